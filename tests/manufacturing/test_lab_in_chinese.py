"""The lab and admin areas in Simplified Chinese (issue 21): every main page of donations,
eligibility, manufacturing, storage, deviations, QA, QC, labels and administration, fetched with
a browser asking for zh-CN, shows no English word outside codes and record values; the scan box
says in Chinese that a lot number or shipper ID names nothing."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import current_app
from sqlalchemy import select

from cellchain.chain.models import Unit, UnitEvent
from cellchain.core.models import IssuedIdentifier, Signature, User
from cellchain.core.types import utcnow
from cellchain.donors.models import Donation, DonorTestPanel
from cellchain.extensions import db
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.models import (
    Deviation,
    Equipment,
    MaterialLot,
    ProcessingStep,
)
from cellchain.quality.models import QcResult, Specification

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}

#: Words a Chinese page keeps as they are: codes, abbreviations and units (the glossary's
#: "keep as is"), and the product's name.
KEPT = {
    "cellchain",
    "DIN",
    "DINs",
    "ISBT",
    "MSC",
    "COI",
    "CoA",
    "QR",
    "API",
    "QA",
    "QC",
    "PDF",
    "CSV",
    "PNG",
    "ZPL",
    "Zebra",
    "SHA",
    "mL",
    "mm",
    "dpi",
    "DMSO",
    "CPD",
    "PD",
    "LN",
    "EU",
    "OOS",
    "Data",
    "Matrix",
    "UC",
    "v",
    "P",
    "h",
    "A4",
    "min",
    "e7",
    "e6",
}
#: What is not read as text: code, the identifiers' boxes, and the audit tables, which show
#: stored actions, field names and values as recorded (English by design).
SKIPPED_CLASSES = {"code", "audit", "k"}
SKIPPED_TAGS = {"script", "style", "code", "datalist"}
SKIPPED_IDS = {"audit-entries", "label-payload", "label-fields"}
ATTRIBUTES = ("title", "placeholder", "aria-label", "alt")


class _VisibleText(HTMLParser):
    """The text a person reads on a page, and the attributes a screen reader says."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._stack: list[tuple[str, bool]] = []

    def _skipping(self) -> bool:
        return any(skip for _tag, skip in self._stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        classes = set((values.get("class") or "").split())
        skip = (
            tag in SKIPPED_TAGS
            or values.get("lang") == "en"
            or bool(classes & SKIPPED_CLASSES)
            or values.get("id") in SKIPPED_IDS
        )
        if not self._skipping() and not skip:
            self.parts.extend(values[name] or "" for name in ATTRIBUTES if values.get(name))
        if tag not in {"input", "br", "meta", "link", "img", "hr"}:
            self._stack.append((tag, skip))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._stack) - 1, -1, -1):
            if self._stack[index][0] == tag:
                del self._stack[index:]
                break

    def handle_data(self, data: str) -> None:
        if not self._skipping():
            self.parts.append(data)


def untranslated_words(page: str, record_values: set[str]) -> list[str]:
    """The English words left in ``page``'s visible text once codes, record values (stored
    text such as a person's name or a material's, which stays as recorded) and the kept
    abbreviations are taken out."""
    parser = _VisibleText()
    parser.feed(page)
    text = "\n".join(parser.parts)
    for value in sorted(record_values, key=len, reverse=True):
        if value:
            text = text.replace(value, " ")
    words = re.findall(r"[A-Za-z][A-Za-z'’-]*[A-Za-z]|[A-Za-z]", text)
    return [
        word
        for word in words
        if word not in KEPT and not re.fullmatch(r"[A-Z0-9-]+", word) and len(word) > 1
    ]


def stored_values() -> set[str]:
    """Texts the site stores and shows as recorded: names, sites, materials, test names."""
    values: set[str] = set()
    for user in db.session.scalars(select(User)):
        values |= {user.full_name, user.username}
    for donation in db.session.scalars(select(Donation)):
        values |= {
            donation.collection_site,
            donation.collector,
            donation.transport_conditions,
            donation.receipt_note or "",
        }
        values |= set(donation.tissues or [])
    for material in db.session.scalars(select(MaterialLot)):
        values |= {material.material, material.supplier}
    for item in db.session.scalars(select(Equipment)):
        values.add(item.name)
    for signature in db.session.scalars(select(Signature)):
        values.add(signature.meaning)
    for unit in db.session.scalars(select(Unit)):
        values.add(unit.location)
    for event in db.session.scalars(select(UnitEvent)):
        values |= {event.location or "", event.from_location or "", event.note or ""}
    for panel in db.session.scalars(select(DonorTestPanel)):  # the donor test panels (issue 22)
        values |= {test["name"] for test in panel.parameters["tests"]}
    for issued in db.session.scalars(select(IssuedIdentifier)):
        values.add(issued.purpose or "")
    for deviation in db.session.scalars(select(Deviation)):
        values |= {deviation.description, deviation.resolution or ""}
    for spec in db.session.scalars(select(Specification)):
        for test in spec.parameters["tests"]:
            values |= {test["name"], test.get("method") or "", test.get("unit") or ""}
            values |= set(test.get("categories") or [])
    for result in db.session.scalars(select(QcResult)):
        values |= {result.test_name, result.criterion or "", result.instrument or ""}
    return {value for value in values if value}


@pytest.fixture
def lab_site(released: Any) -> dict[str, Any]:
    """The released lot's site, with an open deviation on the lot and an administrator."""
    lab = db.session.get(User, released.made_by_id)
    deviation = deviations.open_deviation(
        db.session,
        lot=released,
        category="process",
        description="Incubator door left ajar for 4 minutes",
        actor=lab,
        now=utcnow(),
    )
    db.session.commit()
    step = db.session.scalars(select(ProcessingStep).order_by(ProcessingStep.id)).first()
    tank = db.session.scalars(select(Equipment).where(Equipment.kind == "ln2_tank")).first()
    spec = db.session.scalars(select(Specification)).first()
    donation = db.session.get(Donation, released.donation_id)
    return {
        "lot": released,
        "deviation": deviation,
        "step": step,
        "tank": tank,
        "spec": spec,
        "donor_id": donation.donor_id if donation else None,
    }


def pages(site: dict[str, Any]) -> dict[str, list[str]]:
    """Each role's main pages of the lab and admin areas."""
    lot = site["lot"]
    return {
        "technician": [
            "/donations",
            f"/donations/{lot.donation_id}",
            f"/donors/{site['donor_id']}",
            "/donations/new",
            "/manufacturing",
            f"/lots/{lot.id}",
            f"/steps/{site['step'].id}",
            "/steps/passage/new",
            "/materials",
            "/equipment",
            "/storage",
            f"/storage/tanks/{site['tank'].id}",
            "/deviations",
            f"/deviations/{site['deviation'].id}",
            f"/lots/{lot.id}/labels",
            "/account",
        ],
        "qa": [
            "/eligibility",
            f"/donations/{lot.donation_id}/eligibility",
            "/qa",
            f"/lots/{lot.id}/review",
            f"/lots/{lot.id}/testing",
            "/identifiers",
        ],
        "admin": ["/users", "/users/new", "/audit", "/identifiers"],
    }


@pytest.mark.parametrize("role", ["technician", "qa", "admin"])
def test_each_page_of_the_lab_reads_in_chinese(
    role: str, lab_site: dict[str, Any], make_user: Any, clients: Any
) -> None:
    user = make_user(f"zh-{role}", role)
    web = clients.web(user)
    values = stored_values() | {current_app.config["SITE_NAME"]}
    left: dict[str, list[str]] = {}
    for path in pages(lab_site)[role]:
        response = web.get(path, headers=CHINESE)
        assert response.status_code == 200, path
        page = response.get_data(as_text=True)
        assert '<html lang="zh-Hans">' in page, path
        words = untranslated_words(page, values)
        if words:
            left[path] = sorted(set(words))
    assert not left, "English left:\n" + "\n".join(
        f"{path}: {' '.join(words)}" for path, words in left.items()
    )


def test_the_same_pages_still_read_in_english_without_a_language(
    lab_site: dict[str, Any], make_user: Any, clients: Any
) -> None:
    web = clients.web(make_user("en-tech", "technician"))
    page = web.get(f"/lots/{lab_site['lot'].id}").get_data(as_text=True)
    assert "Batch record" in page and "批记录" not in page


def test_the_checker_finds_english_left_on_a_page() -> None:
    page = (
        '<html><body><h1>批次</h1><p>Lot <span class="code">MSC-1</span> waiting</p>'
        '<input placeholder="Scan it"><script>var x = "hidden";</script></body></html>'
    )
    assert untranslated_words(page, set()) == ["Lot", "waiting", "Scan", "it"]
