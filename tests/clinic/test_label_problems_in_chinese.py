"""A unit's label problem reads in the reader's language where the clinic shows it (issue 21):
the bedside check's STOP and a refused dispatch, while what is signed and audited stays the
English it always was (the bedside check keeps each problem's wording beside its English;
the dispatch's refusal remembers its English through every piece it embeds)."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select

from cellchain.clinic.bedside.doses import units_of_dose
from cellchain.clinic.models import BedsideCheck
from cellchain.core import signatures
from cellchain.core.i18n import english_of, using_language
from cellchain.core.models import AuditEntry
from cellchain.core.wording import Quoted, Verbatim, english, from_json, say, to_json, translated
from cellchain.errors import InvalidInput
from cellchain.extensions import db
from cellchain.labels import service as labels
from tests.support.labels import print_units
from tests.support.ward import Ward, payload

CHINESE = {"HTTP_ACCEPT_LANGUAGE": "zh-CN"}
#: a Chinese character: what an English record must not hold
HAN = re.compile(r"[\u4e00-\u9fff]")


def in_chinese(client: Any) -> Any:
    client.environ_base.update(CHINESE)
    return client


def reprinted(unit: Any, actor: Any) -> tuple[int, int]:
    """A reprint of ``unit``'s label, not applied: (the reprint's id, the applied print's)."""
    applied = labels.label_state(db.session, unit).on_unit
    assert applied is not None
    (record,) = print_units([unit], actor, reason="torn at the clinic").prints
    return record.id, applied.id


def stored_check(check_id: int) -> BedsideCheck:
    db.session.expire_all()
    return db.session.execute(select(BedsideCheck).where(BedsideCheck.id == check_id)).scalar_one()


def labelled_of(checks: list[dict[str, Any]]) -> dict[str, Any]:
    (labelled,) = [c for c in checks if c["code"] == "labelled"]
    return labelled


def test_the_bedside_stop_names_a_label_reprinted_and_not_applied_in_chinese(
    ward: Ward, clients: Any
) -> None:
    patient, order = ward.at_bedside()
    bag, dose = order.bags[0].unit, order.dose_unit
    bag_print, bag_on = reprinted(bag, ward.lab.tech)
    dose_print, dose_on = reprinted(dose, ward.lab.tech)
    nurse = in_chinese(clients.web(ward.clinic.clinician))

    checked = nurse.post(
        "/bedside/checks",
        data={"wristband": payload(patient.coi), "label": payload(dose.code)},
    )
    assert checked.status_code == 302
    page = nurse.get(checked.headers["Location"]).get_data(as_text=True)

    assert 'class="verdict stop"' in page
    # the dose's units in its order: the dose first, then its bags
    assert (
        f"{dose.code}（已制备剂量）：其剂量标签（患者研究编号和身份链标识码）（打印记录 "
        f"#{dose_print}）已打印但尚未贴上；其上的标签（打印记录 #{dose_on}）已被这次重新打印"
        "取代。请贴上并在贴好后扫描。"
    ) in page
    assert (
        f"{bag.code}（冻存袋）：其放行标签（打印记录 #{bag_print}）已打印但尚未贴上；其上的"
        f"标签（打印记录 #{bag_on}）已被这次重新打印取代。请贴上并在贴好后扫描。"
    ) in page
    assert "printed but not applied" not in page and "superseded" not in page

    # what is stored (and what a signature of this record would bind) is the English, as
    # before; the wording beside it is what the page read
    check = stored_check(int(checked.headers["Location"].rsplit("/", 1)[1]))
    labelled = labelled_of(check.checks)
    expected = " ".join(labels.label_problems(db.session, units_of_dose(order)))
    assert labelled["passed"] is False and labelled["detail"] == expected
    assert (
        f"{bag.code} (cryobag): its released label (print #{bag_print}) is printed but not "
        f"applied; the label on it (print #{bag_on}) is superseded by that reprint. Put it on "
        "and scan it there."
    ) in expected
    assert not any(HAN.search(c["title"] + c["detail"]) for c in check.checks)
    assert ["labelled", False, expected] in check.signed_content()["checks"]
    kept = labelled["wording"]["detail"]
    assert [part["m"] for part in kept["p"]] == [
        "%(name)s: %(required)s (print #%(print)s) is printed but not applied; the label on "
        "it (print #%(on_unit)s) is superseded by that reprint. Put it on and scan it there."
    ] * 2
    assert english(from_json(kept)) == expected


def test_a_signed_go_stopped_at_the_start_by_a_label_reads_chinese_and_its_signatures_hold(
    ward: Ward, clients: Any
) -> None:
    patient, order = ward.at_bedside()
    go = ward.sign(ward.verify(patient, order))
    assert go.verdict == "go"
    signed = signatures.manifest(db.session, go)
    assert len(signed) == 2 and all(entry.valid for entry in signed)
    bag = order.bags[0].unit
    bag_print, bag_on = reprinted(bag, ward.lab.tech)
    nurse = in_chinese(clients.web(ward.clinic.clinician))

    started = nurse.post(f"/bedside/checks/{go.id}/start")
    assert started.status_code == 302
    stop_url = started.headers["Location"]
    assert stop_url.rsplit("/", 1)[1] != str(go.id)
    page = nurse.get(stop_url).get_data(as_text=True)
    assert 'class="verdict stop"' in page
    assert (
        f"{bag.code}（冻存袋）：其放行标签（打印记录 #{bag_print}）已打印但尚未贴上；其上的"
        f"标签（打印记录 #{bag_on}）已被这次重新打印取代。请贴上并在贴好后扫描。"
    ) in page

    stop = stored_check(int(stop_url.rsplit("/", 1)[1]))
    (failed,) = stop.failed
    assert failed["code"] == "labelled"
    assert failed["detail"] == (
        f"{bag.code} (cryobag): its released label (print #{bag_print}) is printed but not "
        f"applied; the label on it (print #{bag_on}) is superseded by that reprint. Put it on "
        "and scan it there."
    )
    # the signed go is untouched: both signatures still verify against what they signed
    go = stored_check(go.id)
    assert all(entry.valid for entry in signatures.manifest(db.session, go))
    with using_language("zh_Hans"):
        assert "已被这次重新打印取代" in labelled_of(stop.checks_shown)["detail"]


def test_a_check_stored_before_label_problems_kept_their_wording_reads_as_stored() -> None:
    problem = "X (cryobag) has no label: its released label was never printed."
    checks = [{"code": "labelled", "title": "Labelled", "passed": False, "detail": problem}]
    kept_verbatim = [
        {**checks[0], "wording": {"title": to_json(Verbatim("Labelled")), "detail": {"t": problem}}}
    ]
    with using_language("zh_Hans"):
        for stored in (checks, kept_verbatim):
            old = BedsideCheck(checks_json=json.dumps(stored))
            assert labelled_of(old.checks_shown)["detail"] == problem


def test_a_quoted_marking_reads_as_printed_in_every_language() -> None:
    marking = "QUARANTINE — NOT FOR CLINICAL USE"
    wording = say(labels._LABEL_MARKED, marking=Quoted(marking))
    assert from_json(json.loads(json.dumps(to_json(wording)))) == wording
    with using_language("zh_Hans"):
        assert translated(wording) == f"标有“{marking}”的标签"
    assert english(wording) == f"its label marked “{marking}”"


def test_a_dispatch_refused_for_its_labels_reads_chinese_and_is_audited_in_english(
    ward: Ward, clients: Any
) -> None:
    order = ward.prepared(labelled=False)
    dose = order.dose_unit
    bags = [bag.unit for bag in order.bags]
    tech = in_chinese(clients.web(ward.lab.tech))
    form = {
        "shipper_id": "DS-9",
        "logger_id": "TL-9",
        "destination": "Clinic",
        "courier": "courier: J. Doe",
        "doses": payload(dose.code) + "\n",
    }
    refused = tech.post("/shipments", data=form)
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    dose_problem = (
        f"{dose.code}（已制备剂量）没有标签：其剂量标签（患者研究编号和身份链标识码）从未打印。"
    )
    bag_problems = [f"{bag.code}（冻存袋）没有标签：其放行标签从未打印。" for bag in bags]
    said = f"{dose.code} 不能发放：{' '.join([dose_problem, *bag_problems])}"
    assert said in page
    assert "has no label" not in page and "cannot be dispensed" not in page

    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "shipment.dispatch_refused")
    ).one()
    refusal = json.loads(entry.changes)["refused"][1]
    problems = " ".join(
        [
            f"{dose.code} (prepared dose) has no label: its dose label (patient study ID and "
            "COI identifier) was never printed.",
            *(
                f"{bag.code} (cryobag) has no label: its released label was never printed."
                for bag in bags
            ),
        ]
    )
    assert refusal == (
        f"The shipment was not dispatched: {dose.code} cannot be dispensed: {problems}"
    )
    assert not HAN.search(entry.changes)


def test_the_dispatch_api_and_service_say_a_superseded_label_in_chinese(
    ward: Ward, clients: Any
) -> None:
    order = ward.prepared()
    bag = order.bags[0].unit
    bag_print, bag_on = reprinted(bag, ward.lab.tech)
    with using_language("zh_Hans"):
        try:
            ward.ship(order)
        except InvalidInput as error:
            refused = error
        else:
            raise AssertionError("a dose whose label is superseded was dispatched")
    db.session.rollback()
    chinese = (
        f"{bag.code}（冻存袋）：其放行标签（打印记录 #{bag_print}）已打印但尚未贴上；其上的"
        f"标签（打印记录 #{bag_on}）已被这次重新打印取代。请贴上并在贴好后扫描。"
    )
    assert refused.detail == f"运输未发出：{order.dose_unit.code} 不能发放：{chinese}"
    assert refused.errors == {"doses": [f"{order.dose_unit.code} 不能发放：{chinese}"]}
    assert english_of(refused.detail) == (
        f"The shipment was not dispatched: {order.dose_unit.code} cannot be dispensed: "
        f"{bag.code} (cryobag): its released label (print #{bag_print}) is printed but not "
        f"applied; the label on it (print #{bag_on}) is superseded by that reprint. Put it on "
        "and scan it there."
    )

    api = clients.api(ward.lab.tech)
    answer = api.post(
        "/api/v1/shipments",
        json={
            "shipper_id": "DS-9",
            "logger_id": "TL-9",
            "destination": "Clinic",
            "courier": "courier: J. Doe",
            "doses": [payload(order.dose_unit.code)],
        },
        headers={"Accept-Language": "zh-CN"},
    )
    assert answer.status_code == 422
    assert chinese in answer.get_json()["detail"]
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "shipment.dispatch_refused")
    ).one()
    assert "is superseded by that reprint" in entry.changes and not HAN.search(entry.changes)


def test_a_receipt_refused_in_chinese_is_audited_in_english(ward: Ward, clients: Any) -> None:
    # the same summary of a form's messages as the dispatch's: each keeps its English
    order = ward.prepared()
    shipment = ward.ship(order)
    nurse = in_chinese(clients.web(ward.clinic.clinician))
    refused = nurse.post(
        f"/shipments/{shipment.id}/receipt",
        data={"scan": shipment.shipper_id, "temperature_c": "500", "condition": "intact"},
    )
    assert refused.status_code == 422
    assert "接收未记录：" in refused.get_data(as_text=True)
    # a single message joined alone is a new text too: its English must survive
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "shipment.receipt_refused")
    ).one()
    assert json.loads(entry.changes)["refused"][1] == (
        "The receipt was not recorded: Must be between −273.15 and 100 °C."
    )
    assert not HAN.search(entry.changes)
