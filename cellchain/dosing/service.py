"""Rules of the dosing package's controlled document: the trial protocol, its versions and
their approval (the use cases are ``documents.service.DocumentKind``'s)."""

from __future__ import annotations

from cellchain.core.i18n import lazy
from cellchain.core.roles import Permission
from cellchain.documents.service import DefaultVersion, DocumentKind
from cellchain.dosing.defaults import (
    NCT01420432_CODE,
    NCT01420432_PARAMETERS,
    NCT01420432_TITLE,
)
from cellchain.dosing.models import Protocol
from cellchain.dosing.protocol_rules import check as check_protocol

PROTOCOLS = DocumentKind(
    model=Protocol,
    permission=Permission.SIGN_PROTOCOL,
    approval_meaning="approval: protocol version in force",
    default=DefaultVersion(NCT01420432_CODE, NCT01420432_TITLE, NCT01420432_PARAMETERS),
    missing=lazy("No version of protocol {code} is in force; QA must approve one first."),
    # a positive dose, visit windows that do not overlap (protocol_check), the products it
    # allows, its arms and randomization, ages and limits (protocol_rules, issue 22)
    check=check_protocol,
)
