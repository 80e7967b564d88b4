"""Which language each request speaks, and the switch in the header (``core.i18n``).

The language is chosen without a database read, so that no request grows by a statement:
the user's choice travels in the session (set at login from ``users.language`` and by the
switch), else the browser's Accept-Language names one cellchain speaks, else the site's
``CELLCHAIN_LANGUAGE``. An API client asks with Accept-Language.
"""

from __future__ import annotations

from flask import Flask, current_app, g, request, session
from flask_babel import Babel, get_locale

from cellchain.core.i18n import (
    ACTIVE_LANGUAGE,
    LANGUAGES,
    best_language,
    document_text,
    template_gettext,
    template_ngettext,
)
from cellchain.core.wording import markup_of

#: the session's key for the language the user chose
SESSION_LANGUAGE_KEY = "language"


def select_language() -> str:
    """The language of this request: the user's choice, the browser's, the site's."""
    chosen = session.get(SESSION_LANGUAGE_KEY)
    if chosen in LANGUAGES:
        return str(chosen)
    asked = best_language([tag for tag, _quality in request.accept_languages])
    return asked or str(current_app.config["SITE_LANGUAGE"])


def remember_language_of(language: str | None) -> None:
    """At login: the user's saved choice becomes the session's (none: keep the browser's)."""
    if language in LANGUAGES:
        session[SESSION_LANGUAGE_KEY] = language


def choose_for_session(language: str) -> bool:
    """The switch: ``language`` for this browser from now on; False if cellchain does not
    speak it."""
    if language not in LANGUAGES:
        return False
    session[SESSION_LANGUAGE_KEY] = language
    return True


def _html_tag(language: str) -> str:
    """The BCP 47 tag of a language for ``<html lang>``: ``zh-Hans``, ``en``."""
    return language.replace("_", "-")


def init_language(app: Flask) -> None:
    """Flask-Babel with cellchain's selection, the request's language for every text, and
    the templates' ``_``."""
    Babel(app, locale_selector=select_language, default_timezone="UTC")
    # the templates translate with core.i18n (its catalogues, compiled in memory), not with
    # Flask-Babel's on-disk ones; `{% trans %}` blocks are read with their whitespace trimmed
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        template_gettext, template_ngettext, newstyle=True
    )
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    # a controlled document's or a signature meaning's text, stored in English, shown in
    # the reader's language when the catalogue has it
    app.jinja_env.filters["document_text"] = document_text
    # a kept wording (``core.wording``) in the reader's language, as HTML: a quoted text (a
    # label's printed marking) marked translate="no", as written on the thing
    app.jinja_env.filters["wording"] = markup_of

    @app.before_request
    def speak_the_request_language() -> None:
        if request.endpoint != "static":
            g.language_token = ACTIVE_LANGUAGE.set(str(get_locale() or "en"))

    @app.teardown_request
    def forget_the_request_language(_error: BaseException | None) -> None:
        token = g.pop("language_token", None)
        if token is not None:
            ACTIVE_LANGUAGE.reset(token)

    @app.context_processor
    def language_context() -> dict[str, object]:
        language = ACTIVE_LANGUAGE.get()
        return {
            "languages": LANGUAGES,
            "current_language": language,
            "html_lang": _html_tag(language),
        }
