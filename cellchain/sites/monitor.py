"""The read-only monitor (sponsor) role: what it may still post, and the names it never
reads (docs/sites.md).

A monitor reads the records of every site and changes nothing: ``wiring.py`` refuses every
request of a monitor other than GET, HEAD and OPTIONS with 403 before its view runs, except
the few acts on the monitor's own session (``OWN_SESSION_ENDPOINTS``). A patient is named by
study ID and COI only and a donor by a code, so the names of people in the records are the
users' (who enrolled, signed, dispatched, received …, and the printed names of signatures)
and the few fields that hold a person in words by design (``PERSON_FIELDS``: a donation's
collector, who took custody at a hand-off, who performed a calibration, a site's contact):
every page and API answer a monitor gets has each user's name replaced by the person's role
and a pseudonym (``Clinician U7``), the username written beside it ("U7 (wang.li)") removed,
and each value of those fields replaced by "withheld from the monitor", by ``pseudonymise``.
A PDF or a file, whose bytes cannot be rewritten so, is refused to the monitor.
"""

from __future__ import annotations

import json
import re

from markupsafe import escape
from sqlalchemy import select

from cellchain.chain.models import UnitEvent
from cellchain.core.i18n import _
from cellchain.core.models import Signature, User
from cellchain.core.roles import Role
from cellchain.donors.models import Donation
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import EquipmentEvent
from cellchain.sites.models import Site

#: the fields that hold a person in words by design (docs/sites.md): their values are
#: withheld from the monitor wherever they are written (page, API, a change's old/new value)
PERSON_FIELDS = (
    Donation.collector,  # who recovered the tissue ("Midwife R. Okafor")
    UnitEvent.counterparty,  # who took custody at a hand-off ("courier: J. Doe")
    EquipmentEvent.performed_by,  # a person or a service provider
    Site.contact,  # a site's contact person
)

#: what a monitor may post: logging out, changing their own password (required at first
#: login), choosing the language of the pages
OWN_SESSION_ENDPOINTS = frozenset(
    {"web.logout", "web.login", "web.choose_language", "admin.change_password"}
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: answers rewritten for a monitor; any other kind of body (PDF, CSV, ZIP) is refused
TEXT_TYPES = frozenset(
    {"text/html", "application/json", "application/problem+json", "application/fhir+json"}
)
#: plain-text answers (a CSV list), rewritten as text
PLAIN_TYPES = frozenset({"text/csv", "text/plain"})
#: the app's own files (style sheets, scripts, images, fonts), which name nobody
STATIC_TYPES = frozenset(
    {
        "text/css",
        "text/javascript",
        "application/javascript",
        "image/svg+xml",
        "image/png",
        "image/x-icon",
        "image/vnd.microsoft.icon",
        "font/woff2",
        "application/font-woff2",
    }
)


def is_monitor(roles: frozenset[Role]) -> bool:
    """Whether an account reads as the monitor (the role suspends any other it is held with)."""
    return Role.MONITOR in roles


def may_post(endpoint: str | None) -> bool:
    return endpoint in OWN_SESSION_ENDPOINTS


def pseudonym(user: User) -> str:
    """How a monitor reads a person: their first role and a number that is not a name."""
    roles = sorted(user.roles, key=lambda role: role.value)
    label = roles[0].label if roles else _("User")
    return f"{label} U{user.id}"


def names_to_hide(session: DbSession) -> dict[str, str]:
    """Every person's name a record may show → what a monitor reads instead: the users'
    full names and the printed names signatures were made with, longest first (so that a
    name containing another is replaced whole)."""
    users = list(session.scalars(select(User)))
    hidden = {user.full_name: pseudonym(user) for user in users if len(user.full_name) >= 2}
    by_id = {user.id: user for user in users}
    for signer_id, printed in session.execute(
        select(Signature.signer_id, Signature.printed_name).distinct()
    ):
        if printed and len(printed) >= 2 and printed not in hidden and signer_id in by_id:
            hidden[printed] = pseudonym(by_id[signer_id])
    return dict(sorted(hidden.items(), key=lambda item: -len(item[0])))


def withheld(session: DbSession) -> dict[str, str]:
    """Every value of ``PERSON_FIELDS`` (3 characters or more) → "withheld from the monitor"
    in the reader's language, longest first."""
    instead = _("[withheld from the monitor]")
    found: set[str] = set()
    for field in PERSON_FIELDS:
        found.update(
            value.strip()
            for value in session.scalars(select(field).distinct())
            if value and len(value.strip()) >= 3
        )
    return {value: instead for value in sorted(found, key=len, reverse=True)}


def usernames(session: DbSession) -> dict[str, str]:
    """Every username → the user's pseudonym: a username may be a name (``wang.li``)."""
    return {user.username: pseudonym(user) for user in session.scalars(select(User))}


def pseudonymise(
    body: str,
    names: dict[str, str],
    *,
    json_body: bool,
    logins: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> str:
    """``body`` with every name of ``names`` replaced, as written in HTML (escaped) or JSON
    (escaped, non-ASCII as ``\\uXXXX``) as well as plain; every username of ``logins``
    where it stands alone (a whole JSON string, or the whole text of an HTML element) or in
    brackets after the user's pseudonym ("Clinician U4 (cleo)", "<strong>Clinician
    U4</strong> (cleo)", "U4（cleo）"); and every value of ``values`` (``withheld``) as a
    whole word, outside HTML tags and JSON keys."""
    for login, instead in (logins or {}).items():
        if json_body:  # a value (never a key): after ':', '[' or ',', before ',', '}' or ']'
            pattern = r"([:\[,]\s*)" + re.escape(json.dumps(login)) + r"(?=\s*[,}\]])"
            body = re.sub(pattern, r"\g<1>" + json.dumps(instead).replace("\\", "\\\\"), body)
        else:
            body = body.replace(f">{escape(login)}<", f">{escape(instead)}<")
    for name, instead in names.items():
        forms = {name, str(escape(name))}
        if json_body:
            forms.add(json.dumps(name)[1:-1])
            forms.add(json.dumps(name, ensure_ascii=False)[1:-1])
        for form in sorted(forms, key=len, reverse=True):
            if form in body:
                body = body.replace(form, instead)
    for login, instead in (logins or {}).items():
        body = _without_login_beside(body, login, instead, json_body=json_body)
    for value, instead in (values or {}).items():
        body = _withhold(body, value, instead, json_body=json_body)
    return body


def _forms(text: str, *, json_body: bool) -> set[str]:
    if json_body:
        return {json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}
    return {text, str(escape(text))}


def _without_login_beside(body: str, login: str, instead: str, *, json_body: bool) -> str:
    """``body`` with "(login)" removed where it follows the user's pseudonym ``instead``
    (after an element's end tag or not, ASCII or full-width brackets)."""
    for shown in _forms(instead, json_body=json_body) | {instead}:
        if shown not in body:
            continue
        for written in _forms(login, json_body=json_body):
            pattern = (
                "(" + re.escape(shown) + r"(?:</\w+>)?)\s*[(（]" + re.escape(written) + "[)）]"
            )
            body = re.sub(pattern, lambda match: match.group(1), body)
    return body


def _withhold(body: str, value: str, instead: str, *, json_body: bool) -> str:
    """``body`` with ``value`` replaced where it is a whole word of a text: never inside an
    HTML tag (an address, an attribute) nor as a JSON key."""
    outside = r"(?![^<>]*>)" if not json_body else r'(?!"\s*:)'
    shown = instead if json_body else str(escape(instead))
    for form in sorted(_forms(value, json_body=json_body), key=len, reverse=True):
        if form in body:
            pattern = r"(?<![\w/.@-])" + re.escape(form) + r"(?![\w/@-])" + outside
            body = re.sub(pattern, lambda _match: shown, body)
    return body
