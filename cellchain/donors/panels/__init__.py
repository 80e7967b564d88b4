"""The donor test panel as a controlled document (DOMAIN.md §3; 21 CFR 1271.85; issue 22).

The infectious-disease tests required on the birth mother's specimen are a versioned,
QA-approved document of their own (``DONOR_TEST_PANELS``, table ``donor_test_panels``), like a
protocol or a release specification. A panel's ``code`` is by default the code of the product
it serves (UC-MSC); a product definition may name another panel with the parameter
``donor_test_panel_code`` (two products from the same births share one panel). A donation
keeps the version in force when it was registered (``Donation.donor_test_panel_id``): a later
version never changes which tests an earlier donation needed.

The parameters are ``{"tests": [{"code": "HIV1-NAT", "name": "HIV-1 nucleic acid test"}, …]}``.
The check refuses a panel with no test, a test without a code or a name, a code given twice,
and anything else in a test or in the panel.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cellchain.core.i18n import N_, _, lazy
from cellchain.core.roles import Permission
from cellchain.core.wording import joined_text
from cellchain.documents.service import DefaultVersion, DocumentKind
from cellchain.donors.models import Donation, DonorTestPanel
from cellchain.errors import InvalidInput
from cellchain.extensions import DbSession
from cellchain.manufacturing.defaults import DEFAULT_DONOR_TEST_PANEL, UC_MSC_CODE
from cellchain.manufacturing.models import ProductDefinition
from cellchain.quality.wording import formatted_later

#: the kind's name in messages (``VersionedDocument.document_label``), for the catalogue
DOCUMENT_LABELS = (N_("Donor test panel"), N_("donor test panel"))

#: the product definition parameter naming the panel its donations are tested against
PANEL_PARAMETER = "donor_test_panel_code"
#: the fields of one test on a panel
TEST_FIELDS = frozenset({"code", "name"})
#: the longest test code a result row keeps (``DonorTestResult.test_code``)
MAX_CODE_LENGTH = 20

DEFAULT_PANEL_TITLE = "Infectious-disease tests of the birth mother (21 CFR 1271.85)"
DEFAULT_PANEL_PARAMETERS: dict[str, Any] = {"tests": DEFAULT_DONOR_TEST_PANEL}


@dataclass(frozen=True)
class PanelTest:
    """One test on a panel: its code (what a result names) and its name."""

    code: str
    name: str


def check_panel(parameters: Mapping[str, Any]) -> None:
    """Refuse a panel that could not decide an eligibility: no test, a test without a code
    or a name, a code given twice, a field no rule reads."""
    problems: list[str] = []
    extra = sorted(set(parameters) - {"tests"})
    if extra:
        problems.append(_("A panel holds its tests only, not %(keys)s.", keys=", ".join(extra)))
    tests = parameters.get("tests")
    if not isinstance(tests, list) or not tests:
        problems.append(_("A donor test panel needs at least one test."))
        tests = []
    seen: set[str] = set()
    for number, test in enumerate(tests, start=1):
        if not isinstance(test, Mapping):
            problems.append(_("Test %(n)s is not a code and a name.", n=number))
            continue
        code = test.get("code")
        name = test.get("name")
        if not isinstance(code, str) or not code.strip():
            problems.append(_("Test %(n)s has an empty code.", n=number))
        elif code != code.strip().upper() or len(code) > MAX_CODE_LENGTH:
            problems.append(
                _(
                    "Test %(n)s: the code %(code)s is written in capitals without spaces "
                    "around it, at most %(most)s characters.",
                    n=number,
                    code=repr(code),
                    most=MAX_CODE_LENGTH,
                )
            )
        elif code in seen:
            problems.append(_("The code %(code)s is on the panel twice.", code=code))
        else:
            seen.add(code)
        if not isinstance(name, str) or not name.strip():
            problems.append(_("Test %(n)s has no name.", n=number))
        unknown = sorted(set(test) - TEST_FIELDS)
        if unknown:
            problems.append(
                _("Test %(n)s: unknown fields %(keys)s.", n=number, keys=", ".join(unknown))
            )
    if problems:
        raise InvalidInput(joined_text(problems), errors={"parameters": problems})


DONOR_TEST_PANELS = DocumentKind(
    model=DonorTestPanel,
    permission=Permission.SIGN_PRODUCT,
    approval_meaning="approval: donor test panel in force",
    default=DefaultVersion(UC_MSC_CODE, DEFAULT_PANEL_TITLE, DEFAULT_PANEL_PARAMETERS),
    missing=formatted_later(
        lazy(
            "No donor test panel {code} is in force; QA must approve one before donations "
            "tested against it can be registered."
        )
    ),
    missing_errors={"product_code": [N_("No approved donor test panel.")]},
    check=check_panel,
)


def panel_code_of(product: ProductDefinition) -> str:
    """The code of the panel a product definition's donations are tested against: the one
    it names, else the product's own code."""
    named = product.parameters.get(PANEL_PARAMETER)
    if isinstance(named, str) and named.strip():
        return named.strip().upper()
    return product.code


def panel_for_registration(
    session: DbSession, product: ProductDefinition, *, at: dt.datetime
) -> DonorTestPanel:
    """The panel version in force at ``at`` (the registration) for ``product``'s donations;
    refused when there is none."""
    return DONOR_TEST_PANELS.in_force(session, panel_code_of(product), at=at)


def tests_of(panel: DonorTestPanel) -> list[PanelTest]:
    """The tests of one panel version, in the order the panel lists them."""
    return [PanelTest(code=test["code"], name=test["name"]) for test in panel.parameters["tests"]]


def panel_of(donation: Donation) -> list[PanelTest]:
    """The tests required for this donation: those of the panel version it was registered
    under."""
    return tests_of(donation.donor_test_panel)


def load_default(session: DbSession, *, actor: Any, now: dt.datetime) -> DonorTestPanel:
    """The default panel (today's UC-MSC figures) as a draft, unless one is on file."""
    return DONOR_TEST_PANELS.load_default(session, actor=actor, now=now)
