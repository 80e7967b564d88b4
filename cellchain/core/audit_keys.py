"""The keys of the audit chain: kept in a file outside the database, never in it (issue 18).

Each audit entry's hash is an HMAC-SHA256 with one of these keys, and the entry names the
key's id (``audit_entries.key_id``). Someone who can write to the database but cannot read
this file cannot recompute a valid hash after rewriting an entry.

The key file holds one key a line, ``key_id:secret`` (the secret in hex, at least 32 hex
digits); blank lines and lines starting with ``#`` are ignored. The **last** key is the one
new entries are made with; the earlier ones stay for verifying the entries they made.
``cellchain audit rotate-key`` appends a new random key (:func:`append_new_key`).

Where the file is: ``AUDIT_KEY_FILE`` (``CELLCHAIN_AUDIT_KEY_FILE``). In production it must
be set and the file must exist and be unreadable to others, or the app refuses to start
(:func:`check_settings`). In development and tests it defaults to ``audit-keys`` in the
instance folder and is created with a random key the first time it is needed, so a demo and
the tests need no set-up (that key protects nothing a site relies on).

With several app servers (issue 22) each reads its own copy of the file. A server whose copy
is older than the chain (its last entry was made with a key that copy lacks, or with a key
after the copy's last one: the key was rotated on another host) refuses to write an audit
entry (:func:`refuse_outdated`, :class:`KeyFileOutdated`, a 503) instead of writing one
``verify`` would report as made with a retired or unknown key; the request's change is not
saved. Copy the file from the host that rotated the key and the server writes again (the file
is read again when it changes).

Checkpoints (``cellchain.core.audit_checkpoints``) are written to ``AUDIT_CHECKPOINT_DIR``
(``CELLCHAIN_AUDIT_CHECKPOINT_DIR``): required in production, ``audit-checkpoints/<database
name>`` in the instance folder in development, none in tests unless configured (test
databases come and go; a test that checks checkpoints gives its own folder).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from cellchain.core.i18n import LazyText, _, lazy
from cellchain.errors import DomainError

#: A key id: short, printable, safe in a file line and an audit entry.
KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
#: The shortest secret accepted, in hex digits (128 bits).
MIN_SECRET_HEX = 32
#: The default key file's name in the instance folder (development and tests).
DEFAULT_KEY_FILE = "audit-keys"
#: The default checkpoint folder in the instance folder (development only).
DEFAULT_CHECKPOINT_DIR = "audit-checkpoints"


class AuditKeyError(RuntimeError):
    """The key file is missing, unreadable or malformed; the message says what to do."""


#: where the docs say what to do when a server's key file is older than the chain
ROTATION_DOCS = "docs/audit-keys-and-checkpoints.md, \"Rotation with several servers\""


class KeyFileOutdated(DomainError):
    """This server's key file is older than the audit chain: the key was rotated elsewhere
    (503: the server cannot record anything until its file is replaced; nothing is saved)."""

    status = 503
    title: str | LazyText = lazy("This server's audit key file is out of date")
    type_slug = "audit-key-file-outdated"

    def __init__(self, *, in_use: str, last_key: str, last_seq: int) -> None:
        super().__init__(
            _(
                "Nothing was saved: this server would sign the audit trail with key "
                "%(in_use)s, but its last entry (#%(seq)s) was made with key %(last)s, which "
                "this server's key file does not hold as its key in use (the key was rotated "
                "on another server). An administrator copies the key file from the server "
                "that rotated the key to this one (%(docs)s); then try again.",
                in_use=in_use,
                seq=last_seq,
                last=last_key,
                docs=ROTATION_DOCS,
            )
        )
        self.in_use, self.last_key, self.last_seq = in_use, last_key, last_seq


@dataclass(frozen=True)
class Keyring:
    """The audit keys in file order; the last one signs new entries and checkpoints."""

    path: Path
    #: key id → secret, in the file's order
    keys: Mapping[str, bytes]

    @property
    def current_id(self) -> str:
        return list(self.keys)[-1]

    @property
    def current_secret(self) -> bytes:
        return self.keys[self.current_id]

    def order(self, key_id: str) -> int:
        """The key's position in the file (0 for the oldest); -1 for an unknown key."""
        for position, known in enumerate(self.keys):
            if known == key_id:
                return position
        return -1

    def mac(self, key_id: str, message: bytes) -> str:
        """HMAC-SHA256 of ``message`` with the key ``key_id`` (KeyError if unknown), in hex."""
        return hmac.new(self.keys[key_id], message, hashlib.sha256).hexdigest()


def refuse_outdated(keyring: Keyring, key_id: str, last_key: str | None, last_seq: int) -> None:
    """Refuse (``KeyFileOutdated``) to append entries made with ``key_id`` of ``keyring``
    after the chain's last entry (``last_seq``, made with ``last_key``; None or empty: a
    legacy entry, or none) when that entry's key is unknown to ``keyring`` or comes after
    ``key_id`` in it: this server's file is older than the key another server rotated to,
    and ``verify`` would report the new entries as made with a retired or unknown key."""
    if not last_key or last_key == key_id:
        return
    position = keyring.order(last_key)
    if position < 0 or position > keyring.order(key_id):
        raise KeyFileOutdated(in_use=key_id, last_key=last_key, last_seq=last_seq)


def parse(text: str, path: Path) -> Keyring:
    """The keyring a key file's text describes; refuses a malformed file line by line."""
    keys: dict[str, bytes] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key_id, separator, secret = line.partition(":")
        key_id, secret = key_id.strip(), secret.strip()
        if not separator or not KEY_ID.match(key_id):
            raise AuditKeyError(
                f"{path}, line {number}: expected key_id:secret with a key id of letters, "
                "digits, '.', '_' or '-' (up to 40)."
            )
        try:
            secret_bytes = bytes.fromhex(secret)
        except ValueError:
            secret_bytes = b""
        if len(secret) < MIN_SECRET_HEX or not secret_bytes:
            raise AuditKeyError(
                f"{path}, line {number}: the secret of key {key_id!r} must be at least "
                f"{MIN_SECRET_HEX} hex digits (make one with `cellchain audit rotate-key`)."
            )
        if key_id in keys:
            raise AuditKeyError(f"{path}, line {number}: key id {key_id!r} appears twice.")
        keys[key_id] = secret_bytes
    if not keys:
        raise AuditKeyError(f"{path} holds no key; add one with `cellchain audit new-key-file`.")
    return Keyring(path=path, keys=keys)


def load(path: Path) -> Keyring:
    """Read the key file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise AuditKeyError(
            f"The audit key file {path} does not exist. Create it with "
            f"`cellchain audit new-key-file {path}` (then keep a copy of it in a safe place)."
        ) from exc
    except OSError as exc:
        raise AuditKeyError(f"The audit key file {path} cannot be read: {exc}.") from exc
    return parse(text, path)


def new_key_id(existing: Mapping[str, bytes]) -> str:
    """A fresh key id: ``k<n>-<6 hex>``, numbered after the existing keys, random enough
    never to be mistaken for the id of a key file that was lost and made again."""
    return f"k{len(existing) + 1}-{secrets.token_hex(3)}"


def _key_line(key_id: str) -> str:
    return f"{key_id}:{secrets.token_hex(32)}\n"


def create_key_file(path: Path) -> Keyring:
    """Create the key file at ``path`` with one random key, readable by its owner only.

    Refuses to replace an existing file (its keys verify entries already written). Safe when
    several processes try at once: the file appears whole, and only one of them makes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(
                "# cellchain audit keys: key_id:secret, the last one is in use. Never delete a\n"
                "# line: each key verifies the audit entries made with it. Keep a copy safe.\n"
            )
            handle.write(_key_line(new_key_id({})))
            handle.flush()
            os.fsync(handle.fileno())
        os.link(partial, path)  # fails if the file exists: never replaces one
    except FileExistsError as exc:
        raise AuditKeyError(f"The audit key file {path} exists already; it is kept.") from exc
    finally:
        partial.unlink(missing_ok=True)
    return load(path)


def append_new_key(path: Path) -> tuple[Keyring, str]:
    """Append a new random key to the key file (it becomes the one in use); returns the
    keyring and the new key's id. Whatever others could do with the file is taken away."""
    keyring = load(path)
    key_id = new_key_id(keyring.keys)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) & ~stat.S_IRWXO)  # none for others
        text = ("" if path.read_bytes().endswith(b"\n") else "\n") + _key_line(key_id)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return load(path), key_id


def ensure(path: Path, *, create: bool) -> Keyring:
    """The keyring at ``path``; created first when missing and ``create`` (not production)."""
    if create and not path.exists():
        try:
            return create_key_file(path)
        except AuditKeyError:
            pass  # another process made it first
    return load(path)


# --- the app's keyring -----------------------------------------------------------------------


def _cache_key(path: Path) -> tuple[int, int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return (status.st_ino, status.st_mtime_ns, status.st_size)


def keyring_for(config: Mapping[str, Any], cache: dict[str, Any]) -> Keyring:
    """The keyring of an app's configuration, read again whenever the file changes (a
    rotation by ``cellchain audit rotate-key`` reaches running workers at their next write).

    ``cache`` is the app's ``extensions`` mapping, where the parsed file is kept."""
    raw = config.get("AUDIT_KEY_FILE")
    if not raw:
        raise AuditKeyError("AUDIT_KEY_FILE is not configured (CELLCHAIN_AUDIT_KEY_FILE).")
    path = Path(raw)
    seen = _cache_key(path)
    cached = cache.get("cellchain.audit_keys")
    if cached is not None and seen is not None and cached[0] == (str(path), seen):
        keyring: Keyring = cached[1]
        return keyring
    keyring = ensure(path, create=config.get("ENV_NAME") != "production")
    cache["cellchain.audit_keys"] = ((str(path), _cache_key(path)), keyring)
    return keyring


def current_keyring() -> Keyring:
    """The keyring of the app in context (``flask.current_app``)."""
    from flask import current_app

    return keyring_for(current_app.config, current_app.extensions)


# --- configuration ---------------------------------------------------------------------------


def default_locations(instance_path: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Fill ``AUDIT_KEY_FILE`` and ``AUDIT_CHECKPOINT_DIR`` where the environment allows a
    default: the key file in the instance folder outside production; checkpoints in the
    instance folder, one folder per database, in development only."""
    environment = config.get("ENV_NAME")
    key_file = config.get("AUDIT_KEY_FILE")
    if not key_file and environment in ("development", "testing"):
        key_file = os.path.join(instance_path, DEFAULT_KEY_FILE)
    checkpoint_dir = config.get("AUDIT_CHECKPOINT_DIR")
    if not checkpoint_dir and environment == "development":
        database = make_url(str(config.get("SQLALCHEMY_DATABASE_URI") or "sqlite://")).database
        name = Path(database or "memory").stem or "memory"
        checkpoint_dir = os.path.join(instance_path, DEFAULT_CHECKPOINT_DIR, name)
    return {"AUDIT_KEY_FILE": key_file, "AUDIT_CHECKPOINT_DIR": checkpoint_dir}


def check_settings(config: Mapping[str, Any]) -> None:
    """In production: the key file is configured, readable, well-formed and not readable by
    others, and a checkpoint folder is configured. Raises ``AuditKeyError`` saying what to do."""
    if config.get("ENV_NAME") != "production":
        return
    raw = config.get("AUDIT_KEY_FILE")
    if not raw:
        raise AuditKeyError(
            "CELLCHAIN_AUDIT_KEY_FILE is not set. The audit chain is keyed with a secret kept "
            "outside the database: create the file with `cellchain audit new-key-file PATH` "
            "(owner-only permissions, a copy kept safe) and set CELLCHAIN_AUDIT_KEY_FILE=PATH."
        )
    path = Path(raw)
    load(path)
    if path.stat().st_mode & stat.S_IRWXO:
        raise AuditKeyError(
            f"The audit key file {path} is accessible to other users; make it readable by "
            f"the app's account only (chmod 600 {path})."
        )
    if not config.get("AUDIT_CHECKPOINT_DIR"):
        raise AuditKeyError(
            "CELLCHAIN_AUDIT_CHECKPOINT_DIR is not set: the folder where `cellchain audit "
            "verify` and `cellchain audit checkpoint` append the signed chain head, which the "
            "site archives (ideally a write-once location, not on the database's host)."
        )
