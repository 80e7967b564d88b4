"""LN2 storage and deviation refusals read in the reader's language (issue 21): Simplified
Chinese with ``Accept-Language: zh-CN`` or ``using_language("zh_Hans")``, English otherwise.
What is stored stays English whoever acted: the refusal written to the audit trail, and the
deviation text the system writes itself on a temperature excursion."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC
from typing import Any

import pytest
from flask_login import login_user
from sqlalchemy import select

from cellchain.chain import service as chain
from cellchain.chain.models import UnitStatus
from cellchain.core.i18n import english_of, gettext, using_language
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.http import AuditedRefusal, unit_of_work
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.models import Deviation
from cellchain.manufacturing.storage import storage
from tests.conftest import TEST_PASSWORD
from tests.support.storage import add_tank, make_lot, store

CHINESE = {"Accept-Language": "zh-CN"}
HAN = re.compile(r"[\u4e00-\u9fff]")


def refused(client: Any, url: str, body: dict[str, Any], status: int, **kw: Any) -> Any:
    """POST ``body`` to ``url``; the answer is the problem ``status``; returns its body."""
    response = client.post(url, json=body, **kw)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def refused_on_record(
    app: Any, user: Any, action: str, attempt: Callable[[], object]
) -> tuple[DomainError, AuditEntry]:
    """Run ``attempt`` for a Chinese reader inside a use case whose refusal is audited (as
    ``http.unit_of_work`` does for the bedside); returns the refusal and its audit entry."""
    with app.test_request_context("/"), using_language("zh_Hans"):
        login_user(user)
        with pytest.raises(DomainError) as caught, unit_of_work(AuditedRefusal(action, "test", 1)):
            attempt()
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)).one()
    return caught.value, entry


def english_on_record(entry: AuditEntry) -> str:
    """The refusal as the audit trail keeps it; asserts it holds no Chinese."""
    old, text = json.loads(entry.changes)["refused"]
    assert old is None and not HAN.search(text), text
    return str(text)


@pytest.fixture
def rig(bench: Any, clients: Any) -> Any:
    lot, bags = make_lot(bench, bags=2)

    class Rig:
        tank = bench.equipment["LN2-01"]
        freezer = bench.equipment["CRF-01"]
        tech = clients.api(bench.lab.tech)
        qa = clients.api(bench.lab.qa)

    Rig.lot, Rig.bags = lot, bags
    return Rig


# --- through the API, Accept-Language: zh-CN -------------------------------------------------


def test_an_occupied_slot_is_refused_in_chinese_naming_the_position_in_chinese(bench, rig):
    first, second = rig.bags
    store(bench, first, "2", "3", "14")
    url = f"/api/v1/storage/units/{second.id}"
    body = {"tank_id": rig.tank.id, "rack": "2", "box": "3", "slot": "14"}

    chinese = refused(rig.tech, url, body, 409, headers=CHINESE)
    assert chinese["title"] == "格已占用"
    assert chinese["detail"] == (
        f"LN2-01 / 架 2 / 盒 3 / 格 14 已被 {first.code} 占用；一格只能存放一个单位。"
    )
    assert chinese["errors"]["slot"] == [f"已被 {first.code} 占用。"]

    english = refused(rig.tech, url, body, 409)
    assert english["title"] == "Slot occupied"
    assert english["detail"] == (
        f"LN2-01 / rack 2 / box 3 / slot 14 is occupied by {first.code}; a slot holds one unit."
    )
    # the stored location stays as it was: English, what the custody events match on
    assert storage.position_of(db.session, first).label == "LN2-01 / rack 2 / box 3 / slot 14"


def test_a_unit_or_a_tank_of_the_wrong_kind_is_refused_naming_the_kind_in_chinese(bench, rig):
    vessel = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1))[0]
    body = {"tank_id": rig.tank.id, "rack": "1", "box": "1", "slot": "1"}
    wrong_unit = refused(rig.tech, f"/api/v1/storage/units/{vessel.id}", body, 422, headers=CHINESE)
    assert wrong_unit["detail"] == (
        f"{vessel.code} 是培养容器；只有冻存袋和细胞库冻存管可放入液氮储存。"
    )
    assert wrong_unit["errors"]["unit"] == ["不是冻存袋或细胞库冻存管。"]

    url = f"/api/v1/storage/units/{rig.bags[0].id}"
    wrong_tank = refused(rig.tech, url, {**body, "tank_id": rig.freezer.id}, 422, headers=CHINESE)
    assert wrong_tank["detail"] == "CRF-01 是程序降温仪，不是液氮罐。"
    assert wrong_tank["errors"]["tank_id"] == ["不是液氮罐。"]
    english = refused(rig.tech, url, {**body, "tank_id": rig.freezer.id}, 422)
    assert english["detail"] == "CRF-01 is a controlled-rate freezer, not an LN2 tank."


def test_an_impossible_tank_reading_is_refused_in_chinese(rig):
    url = f"/api/v1/storage/tanks/{rig.tank.id}/readings"
    chinese = refused(rig.tech, url, {"temperature_c": -300}, 422, headers=CHINESE)
    assert chinese["detail"] == ("-300 °C 不是可能的液氮罐温度；温度应在 -273.15 至 100 °C 之间。")
    english = refused(rig.tech, url, {"temperature_c": -300}, 422)
    assert english["detail"].startswith("-300 °C is not a possible tank temperature")


def test_a_blank_deviation_and_a_second_closing_are_refused_in_chinese(rig):
    blank = refused(
        rig.tech,
        "/api/v1/deviations",
        {"lot_id": rig.lot.id, "category": "process", "description": "   "},
        422,
        headers=CHINESE,
    )
    assert blank["detail"] == "必须填写事件描述。"
    assert blank["errors"]["description"] == ["必填。"]

    opened = rig.tech.post(
        "/api/v1/deviations",
        json={"lot_id": rig.lot.id, "category": "process", "description": "Label smudged."},
    )
    assert opened.status_code == 201, opened.get_data(as_text=True)
    url = f"/api/v1/deviations/{opened.get_json()['id']}/close"
    body = {"resolution": "Relabelled.", "password": TEST_PASSWORD}
    assert rig.qa.post(url, json=body).status_code == 200
    again = refused(rig.qa, url, body, 409, headers=CHINESE)
    assert again["title"] == "偏差已关闭"
    assert again["detail"].startswith(f"偏差 #{opened.get_json()['id']} 已由 ")
    assert again["detail"].endswith("；不能再次关闭。")
    assert "already closed" in refused(rig.qa, url, body, 409)["detail"]


# --- in the service, for a Chinese reader, with the refusal on record in English -----------------


def test_a_discarded_bag_is_refused_in_chinese_and_audited_in_english(app, bench, rig):
    bag = rig.bags[0]
    chain.change_status(
        db.session, bag, UnitStatus.DISCARDED, actor=bench.lab.tech, now=utcnow(), reason="torn"
    )
    db.session.commit()
    error, entry = refused_on_record(
        app, bench.lab.tech, "storage.store_refused", lambda: store(bench, bag)
    )
    assert error.detail == f"{bag.code} 已废弃；实物已不存在的单位不能储存。"
    assert str(error.title) == "单位已不再实际存在"
    assert english_of(error.detail) == (
        f"{bag.code} is discarded; a unit that no longer exists cannot be stored."
    )
    assert english_on_record(entry) == english_of(error.detail)


def test_a_removal_of_a_unit_not_stored_is_refused_in_chinese_and_audited_in_english(
    app, bench, rig
):
    bag = rig.bags[1]

    def take_out() -> object:
        return storage.remove_unit(
            db.session, bag, location="Bench", actor=bench.lab.tech, now=utcnow(), zone=UTC
        )

    error, entry = refused_on_record(app, bench.lab.tech, "storage.remove_refused", take_out)
    assert error.detail == f"{bag.code} 不在液氮储存中。"
    assert error.errors == {"unit": ["未储存。"]}
    assert english_on_record(entry) == f"{bag.code} is not in LN2 storage."


def test_authorising_a_deviation_of_another_category_is_refused_in_chinese(app, bench, rig):
    deviation = deviations.open_deviation(
        db.session,
        lot=rig.lot,
        category="storage_excursion",
        description="Tank alarm.",
        actor=bench.lab.tech,
        now=utcnow(),
    )
    db.session.commit()

    def authorise() -> object:
        return deviations.authorise_excursion(
            db.session,
            deviation,
            max_passage=6,
            max_cumulative_pd=None,
            justification="Needed for the dose.",
            user=bench.lab.qa,
            password=TEST_PASSWORD,
            now=utcnow(),
        )

    error, entry = refused_on_record(app, bench.lab.qa, "deviation.authorise_refused", authorise)
    # the category is a stored value: the reader reads its word, the record its English
    assert error.detail == (f"偏差 #{deviation.id} 是储存偏离偏差；只有超限偏差可以授权超出限值。")
    assert str(error.title) == "不是超限偏差"
    assert english_on_record(entry) == (
        f"Deviation #{deviation.id} is a storage excursion deviation; only a limit-excursion "
        "deviation authorises going beyond a limit."
    )


def test_a_passage_beyond_the_limit_is_refused_in_chinese_and_audited_in_english(app, bench):
    donation = bench.lab.eligible_donation()
    vessels = bench.p5(donation)

    def passage() -> object:
        return bench.passage(vessels, harvested=4.0e5, seed=[1.0e5])

    error, entry = refused_on_record(app, bench.lab.tech, "step.refused", passage)
    assert str(error.title) == "超出产品限值"
    assert f"此次传代将使捐献 {donation.din} 的细胞超出 UC-MSC v1 的限值" in error.detail
    assert "传代 P6（最高 P5）" in error.detail and "已拒绝" in error.detail
    assert error.errors["deviation_id"] == ["需要经质量保证(QA)授权的超限偏差。"]
    on_record = english_on_record(entry)
    assert on_record.startswith(f"This passage would take the cells of donation {donation.din}")
    assert "passage P6 (maximum P5)" in on_record and "It is refused." in on_record


def test_a_closed_excursion_deviation_names_why_in_chinese_in_the_sentence_and_the_field(
    app, bench
):
    donation = bench.lab.eligible_donation()
    vessels = bench.p5(donation)
    excursion = bench.authorised_excursion(donation, max_passage=6)
    deviations.close_deviation(
        db.session,
        excursion,
        resolution="Done.",
        user=bench.lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()

    def passage() -> object:
        return bench.passage(vessels, harvested=4.0e5, seed=[1.0e5], deviation_id=excursion.id)

    error, entry = refused_on_record(app, bench.lab.tech, "step.refused", passage)
    assert error.detail.endswith(f"偏差 #{excursion.id} 未授权此操作：它已关闭。")
    assert error.errors["deviation_id"] == ["它已关闭。"]
    assert english_on_record(entry).endswith(
        f"Deviation #{excursion.id} does not authorise it: it is closed."
    )


# --- what the system writes stays English ----------------------------------------------------


def test_an_excursion_read_by_a_chinese_reader_opens_a_deviation_written_in_english(bench, rig):
    store(bench, rig.bags[0], "1", "1", "1")
    response = rig.tech.post(
        f"/api/v1/storage/tanks/{rig.tank.id}/readings",
        json={"temperature_c": -100},
        headers=CHINESE,
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    [opened] = response.get_json()["deviations"]
    db.session.rollback()
    deviation = db.session.get(Deviation, opened["id"])
    assert deviation.description.startswith(
        "Storage temperature excursion: tank LN2-01 read -100 °C at "
    )
    assert f"above the storage limit of -135 °C of lot {rig.lot.lot_number}" in (
        deviation.description
    )
    assert not HAN.search(deviation.description)
    assert opened["description"] == deviation.description  # the record, as stored
    [entry] = db.session.scalars(
        select(AuditEntry).where(
            AuditEntry.action == "deviation.opened", AuditEntry.entity_id == str(deviation.id)
        )
    ).all()
    assert not HAN.search(entry.changes)
    assert json.loads(entry.changes)["description"] == [None, deviation.description]


def test_a_tank_out_of_service_is_refused_in_chinese(bench, rig):
    spare = add_tank(bench, "LN2-09", active=False)
    chinese = refused(
        rig.tech,
        f"/api/v1/storage/units/{rig.bags[0].id}",
        {"tank_id": spare.id, "rack": "1", "box": "1", "slot": "1"},
        409,
        headers=CHINESE,
    )
    assert chinese["title"] == "液氮罐已停用"
    assert chinese["detail"] == "液氮罐 LN2-09 已停用；不得放入任何物品。"


def test_a_description_made_in_the_readers_language_is_stored_in_its_english(bench, rig):
    """A service that words a deviation with ``_()`` for a Chinese reader stores its English."""
    with using_language("zh_Hans"):
        worded = gettext("Not stored.")
        assert worded == "未储存。"
        deviation = deviations.open_deviation(
            db.session,
            lot=rig.lot,
            category="process",
            description=worded,
            actor=bench.lab.tech,
            now=utcnow(),
        )
    db.session.commit()
    assert deviation.description == "Not stored."
