"""The pages of dosing, traceability, trial data, the chain and the controlled documents in
Simplified Chinese (issue 21): fetched with ``Accept-Language: zh-CN``, no English word is left
in what a person reads, apart from codes and the records' own stored text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from typing import Any

from sqlalchemy import String, Text, select

from cellchain.chain.models import Unit
from cellchain.clinic.models import InfusionStatus, Shipment
from cellchain.core.models import Signature, User
from cellchain.donors.models import Donation, DonorTestResult
from cellchain.dosing.models import Protocol, Weight
from cellchain.extensions import db
from cellchain.manufacturing.models import Lot, LotStatus, MaterialLot, StepKind
from cellchain.quality.models import QcResult
from cellchain.sites.models import Site
from cellchain.traceability.models import Recall, RecallTarget
from cellchain.traceability.recalls import recalls
from tests.support.recalls import open_recall

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}

#: codes, units and names kept as they are in Chinese (the preamble's "keep as is")
KEPT = {
    "COI", "DIN", "MSC", "QA", "QC", "CoA", "QR", "API", "ISBT", "SHA", "CSV", "PDF", "ODM",
    "CDISC", "XML", "zip", "DSMB", "mL", "kg", "EU", "DMSO", "min", "GO", "STOP", "A4",
    "pre_infusion_recheck",
}  # fmt: skip

#: elements whose text is not this area's words: codes, the stored working of a dose, and the
#: shared macros (signatures, the event table, recall notices: ``templates/macros.html``)
SKIPPED_CLASSES = {"code", "working", "sig", "events", "recall-notice", "recall-tag", "k"}
#: the bedside checks in the chain-of-identity report: the bedside record's own stored English
#: (the clinic keeps their wording to be read translated: ``cellchain.clinic.wording``)
SKIPPED_CLASSES |= {"checks", "other-checks"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


class _MainText(HTMLParser):
    """The text a person reads in ``<main>``: text nodes and the placeholder, title and
    aria-label attributes, without scripts, styles and the skipped elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.in_main = False
        self.texts: list[str] = []

    def _skipping(self) -> bool:
        return any(skip for _tag, skip in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "main":
            self.in_main = True
        classes = set((found.get("class") or "").split())
        skip = tag in {"script", "style"} or bool(classes & SKIPPED_CLASSES)
        if self.in_main and not skip and not self._skipping():
            for name in ("placeholder", "title", "aria-label"):
                if found.get(name):
                    self.texts.append(str(found[name]))
        if tag not in VOID:
            self.stack.append((tag, skip))

    def handle_endtag(self, tag: str) -> None:
        if tag == "main":
            self.in_main = False
        while self.stack:
            open_tag, _skip = self.stack.pop()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.in_main and not self._skipping() and data.strip():
            self.texts.append(data)


def untranslated(page: str, stored: Iterable[str]) -> list[str]:
    """The English words of ``page``'s main text, after taking out every stored text (names,
    the protocol's own wording, reasons, locations) and the kept codes."""
    reader = _MainText()
    reader.feed(page)
    text = "\n".join(reader.texts)
    for value in sorted(stored, key=len, reverse=True):
        if len(value) > 1:
            text = text.replace(value, " ")
    words = re.findall(r"[A-Za-z][A-Za-z'’_-]*[A-Za-z]", text)
    return sorted({word for word in words if word not in KEPT and not _code_like(word)})


def _code_like(word: str) -> bool:
    """Identifiers and visit codes: AS-001, R-001, D0 read as letters around digits."""
    return bool(re.fullmatch(r"[A-Z]{1,4}(-[A-Z0-9]+)*", word)) and len(word) <= 4


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


#: tables whose text columns a page shows as stored (names, the protocol's wording, reasons,
#: locations, material and test names, results)
STORED = (
    User,
    Weight,
    Unit,
    Donation,
    DonorTestResult,
    Shipment,
    Recall,
    MaterialLot,
    QcResult,
    Site,  # a patient's clinical site, shown by its stored name (issue 22)
)


def stored_texts() -> set[str]:
    """Every text the records hold that a page shows as it is (stored English, the preamble),
    and the words other areas put on these pages: a processing step's kind, a lot's status,
    an infusion's status, the shared macros' eligibility tags, the signature meanings (each
    stored with its signature)."""
    session = db.session
    found: set[str] = set()
    for protocol in session.scalars(select(Protocol)):
        found.add(protocol.title)
        found.update(_strings(json.loads(protocol.parameters_json)))
    for model in STORED:
        columns = [c for c in model.__table__.columns if isinstance(c.type, String | Text)]
        for row in session.execute(select(*columns)):
            found.update(value for value in row if isinstance(value, str))
    found.update(session.scalars(select(Signature.meaning)))
    found.update({recalls.OPEN_MEANING, recalls.CLOSE_MEANING})
    found.update(kind.label for kind in StepKind)
    found.update(status.value for status in LotStatus)
    found.update(status.label for status in InfusionStatus)
    found.update({"eligible", "ineligible — blocked", "quarantine — eligibility pending"})
    return {text for text in found if text}


def chinese_page(client: Any, url: str) -> str:
    response = client.get(url, headers=CHINESE)
    assert response.status_code == 200, (url, response.status_code)
    page = response.get_data(as_text=True)
    assert '<html lang="zh-Hans"' in page, url
    return page


def test_the_dosing_and_traceability_pages_read_in_chinese(infused: Any, ward: Any, clients: Any):
    infusion, waiting = infused
    patient = infusion.dose_order.patient
    order = infusion.dose_order
    lot = db.session.scalars(select(Lot)).first()
    assert lot is not None
    recall = open_recall(ward, RecallTarget.LOT, lot.id).recall
    unit = db.session.get(Unit, order.dose_unit_id)
    assert unit is not None
    qa = clients.web(ward.lab.qa)
    statistician = clients.web(ward.clinic.statistician)

    pages = {
        "/patients": qa,
        f"/patients/{patient.id}": qa,
        f"/patients/{waiting.patient_id}/doses/M3": qa,
        f"/doses/{order.id}": qa,
        f"/doses/{waiting.id}": qa,
        "/protocols": qa,
        f"/protocols/{patient.protocol_id}": qa,
        "/randomization": statistician,
        f"/patients/{patient.id}/rechecks": qa,
        f"/patients/{patient.id}/coi-report": qa,
        f"/trace/back/dose/{order.id}": qa,
        f"/trace/forward/lot/{lot.id}": qa,
        "/recalls": qa,
        f"/recalls/new?target_type=lot&target_id={lot.id}": qa,
        f"/recalls/{recall.id}": qa,
        f"/units/{unit.id}": qa,
        "/trial-data": statistician,
    }
    stored = stored_texts()
    left = {url: untranslated(chinese_page(client, url), stored) for url, client in pages.items()}

    assert {url: words for url, words in left.items() if words} == {}


def test_the_check_finds_an_english_word_left_on_a_page():
    page = (
        '<main id="main"><h1>患者</h1><p>剂量 <span class="code">AS-001</span> pending</p></main>'
    )

    assert untranslated(page, stored=()) == ["pending"]
    assert untranslated(page.replace("pending", "待定"), stored=()) == []
