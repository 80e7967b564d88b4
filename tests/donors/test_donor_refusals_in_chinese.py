"""Issue 21: registration, receipt, donor tests and processing refuse in the reader's language.

A technician or QC analyst who reads Chinese (``Accept-Language: zh-CN`` on the API, a
page's browser language, ``using_language`` for the rules themselves) reads each refusal in
Chinese, at the top and at its fields; what is on record stays English: ``english_of`` of the
refusal, which ``http.unit_of_work`` audits, and the failed signature's audit entry.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from flask_login import login_user
from sqlalchemy import select

from cellchain.core.i18n import english_of, using_language
from cellchain.core.identifiers import parse_identifier
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.donors import service
from cellchain.donors.models import ContainerCondition, InfectiousResult
from cellchain.errors import Conflict, InvalidInput, NotFound
from cellchain.extensions import db
from cellchain.http import AuditedRefusal, unit_of_work
from tests.conftest import TEST_PASSWORD, issue_din
from tests.support.lab import UTC, new_donor, registration

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}
HOURS = dt.timedelta(hours=1)


def has_chinese(text: str) -> bool:
    return any("\u4e00" <= char <= "\u9fff" for char in text)


def refused(error: Any) -> tuple[str, str]:
    """What the reader reads and what the record keeps."""
    return str(error.value.detail), english_of(error.value.detail)


def chinese(client: Any) -> Any:
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = CHINESE["Accept-Language"]
    return client


def registration_body(**changes: Any) -> dict[str, Any]:
    now = utcnow().replace(second=0, microsecond=0)
    today = now.date()
    body: dict[str, Any] = {
        "consent_date": (today - dt.timedelta(days=30)).isoformat(),
        "consent_form_version": "ICF v3.1",
        "screening_outcome": "acceptable",
        "screening_date": (today - dt.timedelta(days=2)).isoformat(),
        "umbilical_cord": True,
        "placenta": True,
        "delivery_at": (now - 6 * HOURS).isoformat(),
        "collected_at": (now - 5 * HOURS).isoformat(),
        "collection_site": "Maternity ward, City Hospital",
        "collector": "Midwife R. Okafor",
        "transport_conditions": "2–8 °C validated shipper",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


# --- registration -------------------------------------------------------------------------------


def test_a_registration_refused_reads_in_chinese_at_the_top_and_at_each_field(
    lab: Any, clients: Any
) -> None:
    api = chinese(clients.api(lab.tech))
    later = utcnow() + HOURS

    response = api.post(
        "/api/v1/donations",
        json=registration_body(
            umbilical_cord=False,
            placenta=False,
            delivery_at=later.isoformat(),
            collected_at=(later + HOURS).isoformat(),
        ),
    )

    body = response.get_json()
    assert response.status_code == 422, body
    assert body["detail"] == "请勾选脐带、胎盘或两者：一份捐献须采集组织。（下方还有 2 项）"
    assert body["errors"]["delivery_at"] == ["分娩时间不能在未来。"]
    assert body["errors"]["collected_at"] == ["采集时间不能在未来。"]
    assert body["title"] == "输入无效"


def test_a_registration_refused_is_english_on_record(lab: Any) -> None:
    with using_language("zh_Hans"), pytest.raises(InvalidInput) as error:
        service.register_donation(
            db.session,
            registration(new_donor=new_donor(consent_date=utcnow().date() + dt.timedelta(days=1))),
            facility_code=lab.app.config["FACILITY_CODE"],
            site_zone=UTC,
            actor=lab.tech,
            now=utcnow(),
        )

    shown, english = refused(error)
    assert shown == "知情同意须在采集当天或之前签署。"
    assert english == "Consent must be given on or before the day of collection."


def test_a_reserved_din_used_twice_and_an_unknown_donor_are_refused_in_chinese(lab: Any) -> None:
    reserved = issue_din(lab.app)
    lab.register(reserved_din=reserved)

    with using_language("zh_Hans"), pytest.raises(Conflict) as used:
        lab.register(reserved_din=reserved)
    with using_language("zh_Hans"), pytest.raises(NotFound) as unknown:
        lab.register(new_donor=None, donor_code="DNR26-99999")

    assert refused(used) == (
        f"DIN {reserved} 已标识另一条记录；请使用新标签。",
        f"DIN {reserved} already identifies another record; use a fresh label.",
    )
    assert used.value.errors == {"reserved_din": ["已被使用。"]}
    assert str(unknown.value.detail) == "没有供者 DNR26-99999。"
    assert unknown.value.errors == {"donor_code": ["未知供者编码。"]}


def test_the_registration_form_says_both_donor_ways_are_too_many_in_chinese(
    lab: Any, clients: Any
) -> None:
    web = clients.web(lab.tech)
    first = lab.register()
    form = {
        key: str(value).lower() if isinstance(value, bool) else value
        for key, value in registration_body(donor_code=first.donor.code).items()
    }
    form["delivery_at"] = form["delivery_at"][:16]
    form["collected_at"] = form["collected_at"][:16]

    page = web.post("/donations/new", data=form, headers=CHINESE).get_data(as_text=True)

    assert "请填写已有供者编码或新供者的知情同意，不能两者都填。" in page
    assert "not both" not in page


# --- receipt ------------------------------------------------------------------------------------


def test_a_receipt_before_collection_is_refused_in_chinese(lab: Any, clients: Any) -> None:
    donation = lab.register()
    api = chinese(clients.api(lab.tech))

    response = api.post(
        f"/api/v1/donations/{donation.id}/receipt",
        json={
            "received_at": (donation.collected_at - HOURS).isoformat(),
            "temperature_c": 4.5,
            "condition": "intact",
            "decision": "accept",
        },
    )

    body = response.get_json()
    assert response.status_code == 422, body
    assert body["errors"]["received_at"] == ["捐献不能在采集之前被接收（见上方采集时间）。"]


def test_a_damaged_container_accepted_without_a_note_names_its_condition_in_chinese(
    lab: Any,
) -> None:
    donation = lab.register()
    receipt = service.Receipt(
        received_at=utcnow() - HOURS,
        temperature_c=4.5,
        condition=ContainerCondition.SEAL_BROKEN,
        accept=True,
    )

    with using_language("zh_Hans"), pytest.raises(InvalidInput) as error:
        service.receive_donation(db.session, donation, receipt, actor=lab.tech, now=utcnow())

    assert refused(error) == (
        "容器封口破损；请说明为何仍可接受。",
        "The container is seal broken; say why it is still acceptable.",
    )


def test_a_receipt_refused_is_audited_in_english(lab: Any) -> None:
    """``http.unit_of_work`` writes the refusal's English, whatever the reader's language."""
    donation = lab.register()
    receipt = service.Receipt(
        received_at=utcnow() - HOURS,
        temperature_c=4.5,
        condition=ContainerCondition.LEAKING,
        accept=False,
    )
    refusal = AuditedRefusal("donation.receipt_refused", "donation", donation.id)

    with lab.app.test_request_context(), using_language("zh_Hans"):
        login_user(lab.tech)
        with pytest.raises(InvalidInput) as error, unit_of_work(refusal) as session:
            service.receive_donation(session, donation, receipt, actor=lab.tech, now=utcnow())

    assert str(error.value.detail) == "请说明拒收该捐献的原因。"
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "donation.receipt_refused")
    ).one()
    assert json.loads(entry.changes)["refused"][1] == "Say why the donation is rejected."


def test_a_second_receipt_names_the_donation_in_chinese(lab: Any) -> None:
    donation = lab.receive(lab.register())

    with using_language("zh_Hans"), pytest.raises(Conflict) as error:
        lab.receive(donation)

    shown, english = refused(error)
    assert shown == f"捐献 {donation.din} 为 '已接收'；不能变为 '已接收'。"
    assert english == f"Donation {donation.din} is 'received'; it cannot become 'received'."


# --- processing and donor tests -----------------------------------------------------------------


def test_processing_past_the_birth_to_processing_limit_is_refused_in_chinese(lab: Any) -> None:
    born = utcnow() - 80 * HOURS
    donation = lab.receive(
        lab.register(delivery_at=born, collected_at=born + HOURS),
    )

    with using_language("zh_Hans"), pytest.raises(Conflict) as error:
        service.start_processing(db.session, donation, actor=lab.tech, now=utcnow())
    with using_language("zh_Hans"):
        assert str(error.value.title) == "超过分娩至处理时限"

    shown, english = refused(error)
    assert shown.startswith(f"捐献 {donation.din}：自分娩已过 80.0 小时；UC-MSC v1 规定")
    assert english.startswith(f"Donation {donation.din}: 80.0 h have passed since birth;")


def test_a_duplicate_result_is_refused_in_chinese_naming_the_result(lab: Any) -> None:
    donation = lab.receive(lab.register())
    lab.record(donation, "HIV1-AB", InfectiousResult.NON_REACTIVE)

    with using_language("zh_Hans"), pytest.raises(Conflict) as error:
        lab.record(donation, "HIV1-AB", InfectiousResult.REACTIVE)

    shown, english = refused(error)
    assert shown == (
        f"HIV1-AB 在捐献 {donation.din} 中已有检验结果（无反应性）；"
        "如需更改，请填写原因更正该结果。"
    )
    assert english == (
        f"HIV1-AB already has a result for donation {donation.din} (non-reactive); correct "
        "that result, with a reason, to change it."
    )
    assert error.value.errors == {"test_code": ["已记录。"]}


def test_a_specimen_outside_the_window_is_refused_in_chinese(lab: Any) -> None:
    donation = lab.receive(lab.register())
    late = donation.collected_at.date() - dt.timedelta(days=10)

    with using_language("zh_Hans"), pytest.raises(InvalidInput) as error:
        lab.record(donation, "HIV1-AB", InfectiousResult.NON_REACTIVE, specimen_date=late)

    assert str(error.value.errors["specimen_date"][0]).startswith("标本须在采集（")
    assert "相距 10 天（21 CFR 1271.80）" in str(error.value.detail)


def test_a_wrong_password_at_the_determination_is_chinese_and_audited_in_english(
    lab: Any, clients: Any
) -> None:
    donation = lab.receive(lab.register())
    lab.full_panel(donation)
    api = chinese(clients.api(lab.qa))

    response = api.post(
        f"/api/v1/donations/{donation.id}/eligibility",
        json={"outcome": "eligible", "password": TEST_PASSWORD + "x"},
    )

    body = response.get_json()
    assert response.status_code == 401, body
    assert body["detail"] == "密码不正确。"
    db.session.rollback()
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "signature.failed")
    ).one()
    assert entry.reason == "The password is not correct."


def test_a_donation_not_found_by_din_is_refused_in_chinese(lab: Any) -> None:
    din = issue_din(lab.app)
    shown_din = parse_identifier(din).display

    with using_language("zh_Hans"), pytest.raises(NotFound) as error:
        service.find_donation(db.session, din)

    assert refused(error) == (
        f"没有 DIN 为 {shown_din} 的捐献。",
        f"No donation has DIN {shown_din}.",
    )
