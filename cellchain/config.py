"""Configuration: defaults per environment, overridden by ``CELLCHAIN_*`` variables.

The environment is chosen by ``CELLCHAIN_ENV`` (``production`` unless said otherwise, so that
a forgotten variable fails safe). Outside development and tests the app refuses to start
without a real secret key and facility code, and says what to set.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from cellchain.core import audit_keys

#: The development secret. Production refuses to start with it.
DEVELOPMENT_SECRET_KEY = "cellchain-development-secret-not-for-production"

#: A facility code of the right shape that is plainly not registered with ICCBBA.
DEMO_FACILITY_CODE = "X9999"

#: Debian's fonts-wqy-microhei: the font the PDFs print Chinese in (CELLCHAIN_CJK_FONT)
DEFAULT_CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"

ENVIRONMENTS = ("production", "development", "testing")


class ConfigurationError(RuntimeError):
    """The configuration cannot run a site safely; the message says what to set."""


def _env(name: str) -> str | None:
    value = os.environ.get(f"CELLCHAIN_{name}")
    return value if value not in (None, "") else None


def _int_env(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"CELLCHAIN_{name} must be a whole number, not {raw!r}.") from exc


def _product_codes_env() -> dict[str, str]:
    """``CELLCHAIN_ISBT128_PRODUCT_CODES=UC-MSC=S1234V00,…``: product → ISBT 128 product code."""
    raw = _env("ISBT128_PRODUCT_CODES")
    codes: dict[str, str] = {}
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        product, separator, code = item.partition("=")
        if not separator or not product.strip() or not code.strip():
            raise ConfigurationError(
                "CELLCHAIN_ISBT128_PRODUCT_CODES is a comma-separated list of "
                f"<product>=<ISBT 128 product code>, e.g. UC-MSC=S1234V00; {item!r} is not."
            )
        codes[product.strip()] = code.strip()
    return codes


def _label_languages_env() -> tuple[str, ...]:
    """``CELLCHAIN_LABEL_LANGUAGES=en,zh_Hans``: the languages a label prints its fixed texts
    in, the first first (checked against the languages cellchain speaks in ``check_config``)."""
    raw = _env("LABEL_LANGUAGES")
    if raw is None:
        return ("en",)
    return tuple(item.strip() for item in raw.split(","))


def load_config(instance_path: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build the Flask config for the environment named by CELLCHAIN_ENV (or the overrides)."""
    overrides = dict(overrides or {})
    environment = overrides.get("ENV_NAME") or _env("ENV") or "production"
    if environment not in ENVIRONMENTS:
        raise ConfigurationError(
            f"CELLCHAIN_ENV is {environment!r}; use one of {', '.join(ENVIRONMENTS)}."
        )
    relaxed = environment in ("development", "testing")
    default_db = "sqlite:///" + os.path.join(instance_path, "cellchain.sqlite")
    config: dict[str, Any] = {
        "ENV_NAME": environment,
        "TESTING": environment == "testing",
        "SECRET_KEY": _env("SECRET_KEY") or (DEVELOPMENT_SECRET_KEY if relaxed else None),
        "SQLALCHEMY_DATABASE_URI": _env("DATABASE_URL") or default_db,
        #: a replica the read-only traces and reports read (core/read_replica.py); none: the
        #: primary (docs/deployment.md)
        "READ_DATABASE_URI": _env("READ_DATABASE_URL"),
        "FACILITY_CODE": _env("FACILITY_CODE") or (DEMO_FACILITY_CODE if relaxed else None),
        "SITE_NAME": _env("SITE_NAME") or "cellchain demo site",
        "SITE_TIMEZONE": _env("TIMEZONE") or "UTC",
        #: the language of a user who has not chosen one and whose browser asks for none
        #: cellchain speaks, and of the CLI ("en" or "zh_Hans")
        "SITE_LANGUAGE": _env("LANGUAGE") or "en",
        # notification e-mails (cellchain/notifications/mail.py): the SMTP server as
        # smtp://user:password@host:port (smtps:// for TLS from the start, ?starttls=1 to
        # upgrade); none: nothing is sent and the outbox page shows what would have been;
        # the From address; the site's address for the links in e-mails
        "SMTP_URL": _env("SMTP_URL"),
        "MAIL_FROM": _env("MAIL_FROM") or "cellchain@localhost",
        "SITE_URL": _env("SITE_URL"),
        #: the TrueType font (.ttf or .ttc) the Chinese PDFs print and embed (core/pdf.py)
        "CJK_FONT": _env("CJK_FONT") or DEFAULT_CJK_FONT,
        "ISBT128_PRODUCT_CODES": _product_codes_env(),
        #: the languages labels print their captions and fixed texts in, the first first
        #: (labels/content.py); values are printed once
        "LABEL_LANGUAGES": _label_languages_env(),
        #: the font resident on the site's Zebra printers that prints Chinese (``E:SIMSUN.FNT``);
        #: none: ZPL is refused while a label language needs it (labels/output.py)
        "ZPL_CJK_FONT": _env("ZPL_CJK_FONT"),
        # the audit chain's keys and checkpoints, outside the database (core/audit_keys.py)
        "AUDIT_KEY_FILE": _env("AUDIT_KEY_FILE"),
        "AUDIT_CHECKPOINT_DIR": _env("AUDIT_CHECKPOINT_DIR"),
        "IDLE_TIMEOUT_MINUTES": _int_env("IDLE_TIMEOUT_MINUTES", 15),
        "LOCKOUT_THRESHOLD": _int_env("LOCKOUT_THRESHOLD", 5),
        # login back-off (core/throttle.py): failures per client address in 10 minutes, the
        # first back-off and its cap; reverse proxies whose X-Forwarded-For is trusted
        "LOGIN_ADDRESS_THRESHOLD": _int_env("LOGIN_ADDRESS_THRESHOLD", 20),
        "LOGIN_BACKOFF_SECONDS": _int_env("LOGIN_BACKOFF_SECONDS", 30),
        "LOGIN_BACKOFF_MAX_SECONDS": _int_env("LOGIN_BACKOFF_MAX_SECONDS", 900),
        "TRUSTED_PROXIES": _int_env("TRUSTED_PROXIES", 0),
        "PASSWORD_MIN_LENGTH": _int_env("PASSWORD_MIN_LENGTH", 12),
        # days from awareness of a serious adverse event to the follow-up sponsor report
        # (clinic/follow_up/reporting.py; ICH E2A III.A.1: 15 calendar days)
        "AE_FOLLOW_UP_REPORT_DAYS": _int_env("AE_FOLLOW_UP_REPORT_DAYS", 15),
        # API tokens: the lifetime given when none is asked for, and the longest allowed
        "API_TOKEN_DAYS": _int_env("API_TOKEN_DAYS", 90),
        # a material lot expiring within this many days is in the technicians' queue (issue 22)
        "MATERIAL_EXPIRY_WARNING_DAYS": _int_env("MATERIAL_EXPIRY_WARNING_DAYS", 30),
        "API_TOKEN_MAX_DAYS": _int_env("API_TOKEN_MAX_DAYS", 365),
        # scrypt is werkzeug's default; tests override with a fast hash.
        "PASSWORD_HASH_METHOD": _env("PASSWORD_HASH_METHOD") or "scrypt",
        # the largest request body, refused with 413 before it is parsed or anyone is
        # authenticated: a phone photo of a label (up to 15 MB, labels/photo.py) and its
        # multipart envelope fit; every other body is a few kB
        "MAX_CONTENT_LENGTH": _int_env("MAX_CONTENT_LENGTH", 16 * 1024 * 1024),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": environment == "production",
        # Strict-Transport-Security max-age; 0 sends none (development and tests run plain HTTP)
        "HSTS_SECONDS": _int_env("HSTS_SECONDS", 31_536_000 if environment == "production" else 0),
        "REMEMBER_COOKIE_DURATION": 0,
        "WTF_CSRF_CHECK_DEFAULT": False,  # checked in cellchain.web.security for cookie requests
        "WTF_CSRF_TIME_LIMIT": None,  # the session itself expires after idle time
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        # flask-smorest
        "API_TITLE": "cellchain",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": "/api/v1/docs-static/",
    }
    config.update(overrides)
    if isinstance(config.get("LABEL_LANGUAGES"), str):  # an override written as in the variable
        config["LABEL_LANGUAGES"] = tuple(
            code.strip() for code in config["LABEL_LANGUAGES"].split(",")
        )
    config.update(audit_keys.default_locations(instance_path, config))
    config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(
        str(config.get("SQLALCHEMY_DATABASE_URI", "")), config["SQLALCHEMY_ENGINE_OPTIONS"]
    )
    config["SESSION_COOKIE_SECURE"] = bool(
        overrides.get("SESSION_COOKIE_SECURE", config["ENV_NAME"] == "production")
    )
    check_config(config)
    return config


#: How cellchain starts a PostgreSQL session (``engine_options``).
SESSION_OPTIONS = "-c jit=off -c timezone=UTC"


def engine_options(url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The engine options for ``url``: on PostgreSQL, sessions start with JIT compilation off,
    and a pooled connection is pinged before use only when it has sat idle (``IdlePingPool``).

    The recursive lineage walk is estimated at millions of rows however small the tree, so
    PostgreSQL would spend 0.2-0.3 s compiling each trace statement that runs in a few
    milliseconds (benchmarks/README.md). The queries here are short; none needs JIT.

    And in UTC, the zone every time is kept and shown in: psycopg then reads a ``timestamptz``
    as an aware UTC time directly, where in a named zone (a server's ``Etc/UTC``) it converted
    each through ``zoneinfo`` (15 ms for the 26 138 units of a forward trace, issue 20), and
    ``UTCDateTime`` had it to convert again. No statement here formats or truncates a time in
    SQL, so the session's zone changes no answer.
    """
    result = dict(options)
    if url.startswith("postgresql"):
        connect_args = dict(result.get("connect_args", {}))
        # the driver's options replace the URL's ``?options=``: a site's own settings there
        # (a search_path, another zone) are kept, after these, so that they win
        site_options = make_url(url).query.get("options") or ""
        if isinstance(site_options, tuple):
            site_options = " ".join(site_options)
        connect_args.setdefault("options", f"{SESSION_OPTIONS} {site_options}".strip())
        result["connect_args"] = connect_args
        if result.get("pool_pre_ping") and "poolclass" not in result:
            result["pool_pre_ping"] = False
            result["poolclass"] = IdlePingPool
    return result


#: A pooled connection idle longer than this is pinged before a request uses it.
PING_AFTER_IDLE_SECONDS = 10.0
_CHECKED_IN_AT = "cellchain_checked_in_at"


class IdlePingPool(QueuePool):
    """SQLAlchemy's pool, with ``pool_pre_ping`` only for connections that sat idle.

    ``pool_pre_ping`` sends ``SELECT 1`` before every request's first statement: a round trip
    per request (issue 20: one of the eight a scan made) to find a connection the server
    closed while it sat in the pool (a restart, an idle timeout). A connection handed back
    less than ``PING_AFTER_IDLE_SECONDS`` ago was working then; it is used without the ping.
    One that sat longer is pinged, and a failed ping invalidates the pool as
    ``pool_pre_ping`` does, so the request gets a new connection. Left to a busy worker's
    connection: a server restart within those seconds fails that worker's next request once
    (SQLAlchemy then invalidates the pool), where the ping would have retried it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # ``recreate`` (``dispose``, an invalidation) hands its listeners to the new pool;
        # add them only to the first
        if not any(listener is _note_checkin for listener in self.dispatch.checkin):
            event.listen(self, "checkin", _note_checkin)
            event.listen(self, "checkout", self._ping_if_idle)

    def _ping_if_idle(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None:  # a connection just made: nothing to check
            return
        if time.monotonic() - checked_in_at <= PING_AFTER_IDLE_SECONDS:
            return
        # the very ping ``pool_pre_ping`` sends, and the same answer to a dead connection
        if not self._dialect._do_ping_w_event(dbapi_connection):
            raise sa_exc.InvalidatePoolError("the ping of a connection idle in the pool failed")


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info[_CHECKED_IN_AT] = time.monotonic()


def check_config(config: Mapping[str, Any]) -> None:
    """Refuse to run a site with settings that would make its records untrustworthy."""
    from cellchain.core.identifiers import validate_facility_code
    from cellchain.errors import InvalidInput

    try:
        ZoneInfo(config["SITE_TIMEZONE"])
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"CELLCHAIN_TIMEZONE {config['SITE_TIMEZONE']!r} is not a known time zone; "
            "use an IANA name such as Europe/Berlin or Asia/Shanghai."
        ) from exc
    from cellchain.core.i18n import LANGUAGES

    if config["SITE_LANGUAGE"] not in LANGUAGES:
        raise ConfigurationError(
            f"CELLCHAIN_LANGUAGE {config['SITE_LANGUAGE']!r} is not a language cellchain "
            f"speaks; use one of {', '.join(LANGUAGES)}."
        )
    _check_label_languages(config)
    if config.get("FACILITY_CODE"):
        try:
            validate_facility_code(config["FACILITY_CODE"])
        except InvalidInput as exc:
            raise ConfigurationError(f"CELLCHAIN_FACILITY_CODE: {exc.detail}") from exc
    _check_isbt128(config)
    _check_read_replica(config)
    if config["ENV_NAME"] in ("development", "testing"):
        return
    key = config.get("SECRET_KEY")
    if not key or key == DEVELOPMENT_SECRET_KEY or len(key) < 32:
        raise ConfigurationError(
            "CELLCHAIN_SECRET_KEY is missing, too short or the development default. Set it to "
            "a long random value, e.g. the output of: python -c 'import secrets; "
            "print(secrets.token_hex(32))' (or set CELLCHAIN_ENV=development for a trial run)."
        )
    if not config.get("FACILITY_CODE") or config["FACILITY_CODE"] == DEMO_FACILITY_CODE:
        raise ConfigurationError(
            "CELLCHAIN_FACILITY_CODE is missing or the unregistered demo code. Set it to the "
            "site's 5-character ISBT 128 facility identification number (FIN) issued by ICCBBA."
        )
    try:
        audit_keys.check_settings(config)
    except audit_keys.AuditKeyError as exc:
        raise ConfigurationError(str(exc)) from exc


def _check_read_replica(config: Mapping[str, Any]) -> None:
    """A read replica (core/read_replica.py) is a copy of the primary: the same kind of
    database, named by a URL SQLAlchemy reads."""
    replica = config.get("READ_DATABASE_URI")
    if not replica:
        return
    try:
        backend = make_url(str(replica)).get_backend_name()
    except sa_exc.ArgumentError as exc:
        raise ConfigurationError(
            "CELLCHAIN_READ_DATABASE_URL is not a database URL; write it as "
            "CELLCHAIN_DATABASE_URL is written, e.g. postgresql+psycopg://reader@standby/cellchain."
        ) from exc
    primary = make_url(str(config.get("SQLALCHEMY_DATABASE_URI") or "sqlite://")).get_backend_name()
    if backend != primary:
        raise ConfigurationError(
            f"CELLCHAIN_READ_DATABASE_URL names a {backend} database but the primary "
            f"(CELLCHAIN_DATABASE_URL) is {primary}: the replica must be a copy of the primary."
        )


#: a printer-resident font as ZPL names it: a drive letter, a colon, a file name with an
#: extension; nothing that could end the field or start another command (``^``, ``~``, ``,``)
_ZPL_FONT = re.compile(r"[A-Z]:[A-Z0-9_\-]{1,32}\.[A-Z]{3}", re.IGNORECASE)


def _check_label_languages(config: Mapping[str, Any]) -> None:
    """The label languages are languages cellchain speaks, each once, at least one; the ZPL
    Chinese font, when set, is a font name a Zebra printer reads."""
    from cellchain.core.i18n import LANGUAGES

    languages = tuple(config.get("LABEL_LANGUAGES") or ())
    if not languages or any(not code for code in languages):
        raise ConfigurationError(
            "CELLCHAIN_LABEL_LANGUAGES is a comma-separated list of language codes, the first "
            f"printed first, e.g. en or en,zh_Hans; use codes from {', '.join(LANGUAGES)}."
        )
    for code in languages:
        if code not in LANGUAGES:
            raise ConfigurationError(
                f"CELLCHAIN_LABEL_LANGUAGES: {code!r} is not a language cellchain speaks; "
                f"use one of {', '.join(LANGUAGES)} (e.g. en,zh_Hans)."
            )
    if len(set(languages)) != len(languages):
        raise ConfigurationError(
            f"CELLCHAIN_LABEL_LANGUAGES names a language twice: {','.join(languages)}."
        )
    font = config.get("ZPL_CJK_FONT")
    if font is not None and not _ZPL_FONT.fullmatch(str(font)):
        raise ConfigurationError(
            f"CELLCHAIN_ZPL_CJK_FONT {font!r} is not a printer font name; write it as the "
            "printer's drive and file, e.g. E:SIMSUN.FNT."
        )


def _check_isbt128(config: Mapping[str, Any]) -> None:
    """ISBT 128 product codes must have the structure's shape (α + 4 digits + 3 characters)."""
    from cellchain.labels.isbt128 import IsbtError, check_product_code

    for product, code in (config.get("ISBT128_PRODUCT_CODES") or {}).items():
        try:
            check_product_code(code)
        except IsbtError as exc:
            raise ConfigurationError(
                f"CELLCHAIN_ISBT128_PRODUCT_CODES: {product}={code}: {exc}"
            ) from exc
