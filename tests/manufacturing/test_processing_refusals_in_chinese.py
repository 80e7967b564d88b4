"""A processing step refused reads in the reader's language (issue 21): Simplified Chinese
with ``Accept-Language: zh-CN`` or ``using_language("zh_Hans")``, English otherwise; the
refusal's audit entry is English whatever the technician reads, and nothing is saved."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask_login import login_user
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from cellchain.core.i18n import english_of, using_language
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.errors import DomainError, InvalidInput
from cellchain.extensions import db
from cellchain.http import AuditedRefusal, unit_of_work
from cellchain.manufacturing.models import ProcessingStep
from cellchain.manufacturing.processing import batch_record, commands, processing, schemas
from cellchain.web.forms import load_form

CHINESE = {"Accept-Language": "zh-CN"}


def steps() -> int:
    return db.session.execute(select(func.count()).select_from(ProcessingStep)).scalar_one()


def refused_in_chinese(
    app: Any, bench: Any, act: Callable[[], object], action: str
) -> tuple[DomainError, str]:
    """Run ``act`` for the technician reading Chinese inside the request's unit of work, which
    audits its refusal as ``action``; the refusal and the English the audit entry keeps."""
    with app.test_request_context("/"), using_language("zh_Hans"):
        login_user(bench.lab.tech)
        with pytest.raises(DomainError) as refused, unit_of_work(AuditedRefusal(action, "test", 1)):
            act()
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)).one()
    return refused.value, str(entry.changes)


def passage(bench: Any, vessels: list[Any], **changes: Any) -> Callable[[], object]:
    values: dict[str, Any] = {
        "harvest": processing.Harvest(cells=2.0e6, viability_percent=95.0),
        "vessels_out": [processing.Vessel("T175", 1.0e5)],
        "context": bench.context(),
    }
    values.update(changes)
    return lambda: processing.passage(
        db.session, vessels_in=vessels, actor=bench.lab.tech, now=utcnow(), **values
    )


def test_step_refusals_read_in_chinese_and_are_audited_in_english(app: Any, bench: Any) -> None:
    vessels = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=2))
    other = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1))
    registered = bench.lab.register()  # not received at the lab yet
    before = steps()
    cases: list[tuple[str, Callable[[], object], str, str, dict[str, str]]] = [
        (
            "pooling",
            passage(bench, vessels[:1] + other),
            "不同捐献的物料绝不合并；这些培养容器来自 2 份捐献：",
            "Material from different donations is never combined; these vessels come from 2 "
            "donations: ",
            {},
        ),
        (
            "viability",
            passage(bench, vessels, harvest=processing.Harvest(2.0e6, 120.0)),
            "活率为 0 到 100 之间的百分比；120 不是。",
            "Viability is a percentage between 0 and 100; 120 is not.",
            {"viability_percent": "应在 0 到 100 之间。"},
        ),
        (
            "future",
            passage(
                bench, vessels, context=bench.context(performed_at=utcnow() + dt.timedelta(hours=2))
            ),
            "步骤不能记录在将来的时间。",
            "A step cannot be recorded in the future.",
            {"performed_at": "时间在将来。"},
        ),
        (
            "format",
            passage(bench, vessels, vessels_out=[processing.Vessel("T999", 1.0e5)]),
            "'T999' 不是此产品的培养容器规格（",
            "'T999' is not a vessel format of this product (",
            {"vessels_out": "未知的培养容器规格。"},
        ),
        (
            "implausible",
            passage(bench, vessels, harvest=processing.Harvest(1.0e9, 95.0)),
            "超出了物理上可能的数量",
            "is more than is physically plausible",
            {"cells_harvested": "对这些培养容器而言高得不合理。"},
        ),
        (
            "seeded",
            passage(bench, vessels, vessels_out=[processing.Vessel("T175", 5.0e6)]),
            "接种 5.00 × 10⁶ 个细胞，多于收获的 2.00 × 10⁶ 个。",
            "5.00 × 10⁶ cells seeded is more than the 2.00 × 10⁶ harvested.",
            {"cells_harvested": "少于接种的细胞数。"},
        ),
        (
            "vial",
            lambda: processing.bank_thaw(
                db.session,
                vial=vessels[0],
                viability_percent=90.0,
                vessels_out=[processing.Vessel("T175", 1.0e5)],
                context=bench.context(),
                actor=bench.lab.tech,
                now=utcnow(),
                zone=ZoneInfo("UTC"),
            ),
            f"{vessels[0].code} 是培养容器，不是细胞库冻存管。",
            f"{vessels[0].code} is a culture vessel, not a cell-bank vial.",
            {"vial": f"{vessels[0].code}：不是细胞库冻存管。"},
        ),
        (
            "vials",
            lambda: processing.bank_freeze(
                db.session,
                vessels_in=vessels,
                harvest=processing.Harvest(2.0e6, 95.0),
                vial_count=2,
                cells_per_vial=0.0,
                volume_ml=1.0,
                context=bench.context(),
                actor=bench.lab.tech,
                now=utcnow(),
            ),
            "每管细胞数必须大于零；0 不符合。",
            "Cells per vial must be more than zero; 0 is not.",
            {"cells_per_vial": "必须大于零。"},
        ),
        (
            "not_received",
            lambda: bench.isolate(registered),
            "尚未在实验室接收。",
            "has not been received at the lab yet.",
            {},
        ),
    ]
    for name, act, chinese, english, fields in cases:
        refusal, audited = refused_in_chinese(app, bench, act, f"test.{name}_refused")
        assert chinese in refusal.detail, name
        assert english in english_of(refusal.detail), name
        assert english in audited, name
        assert not any("\u4e00" <= c <= "\u9fff" for c in audited), (name, audited)
        for field, message in fields.items():
            assert refusal.errors[field] == [message], name
    assert steps() == before  # every refusal saved nothing


def test_a_refused_step_over_the_api_reads_in_chinese_only_when_asked(
    bench: Any, clients: Any
) -> None:
    vessels = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1))
    other = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1))
    tech = clients.api(bench.lab.tech)
    before = steps()
    body = {
        "vessels_in": [vessels[0].code, other[0].code],
        "cells_harvested": 2.0e6,
        "viability_percent": 95,
        "vessel_count": 1,
        "vessel_format": "T175",
        "cells_per_vessel": 1.0e5,
    }
    chinese = tech.post("/api/v1/steps/passage", json=body, headers=CHINESE)
    assert chinese.status_code == 409
    assert chinese.get_json()["title"] == "拒绝跨捐献合并"
    assert chinese.get_json()["detail"].startswith("不同捐献的物料绝不合并")
    english = tech.post("/api/v1/steps/passage", json=body)
    assert english.status_code == 409
    assert english.get_json()["title"] == "Pooling across donations refused"
    assert english.get_json()["detail"].startswith("Material from different donations")

    body["vessels_in"] = [vessels[0].code]
    body["viability_percent"] = 101
    chinese = tech.post("/api/v1/steps/passage", json=body, headers=CHINESE)
    assert chinese.status_code == 422
    assert chinese.get_json()["detail"] == "活率为 0 到 100 之间的百分比；101 不是。"
    assert chinese.get_json()["errors"] == {"viability_percent": ["应在 0 到 100 之间。"]}
    english = tech.post("/api/v1/steps/passage", json=body)
    assert english.get_json()["errors"] == {"viability_percent": ["Between 0 and 100."]}

    assert steps() == before


def test_the_bench_step_name_and_the_culture_time_read_in_chinese(app: Any, bench: Any) -> None:
    with using_language("zh_Hans"), pytest.raises(InvalidInput) as refused:
        commands.step_kind("thaw")
    assert refused.value.detail.startswith("'thaw' 不是在工作台记录的步骤；应为以下之一：")
    assert english_of(refused.value.detail).startswith("'thaw' is not a step recorded at the")

    donation = bench.lab.eligible_donation()
    fresh = processing.isolate(  # seeded now: harvested at once is no culture at all
        db.session,
        donation,
        tissue=donation.units[:1],
        method="enzymatic",
        vessels=[processing.Vessel("T175", 1.0e6)],
        context=bench.context(),
        actor=bench.lab.tech,
        now=utcnow(),
    )
    db.session.commit()
    refusal, audited = refused_in_chinese(
        app,
        bench,
        passage(bench, bench.outputs(fresh), harvest=processing.Harvest(2.0e6, 95.0)),
        "test.culture_time_refused",
    )
    assert str(refusal.title) == "培养时间不合理"
    assert "这些细胞的倍增时间不会短于 12 小时" in refusal.detail
    assert refusal.errors["performed_at"] == [refusal.detail]
    assert "these cells double no faster than every 12 h" in audited


def test_a_bench_form_refused_by_its_shape_reads_in_chinese(app: Any) -> None:
    form = MultiDict(
        {
            "vessels_in": "V1",
            "cells_harvested": "2e6",
            "viability_percent": "95",
            "vessel_count": str(processing.MAX_VESSELS_PER_STEP + 1),
            "vessel_format": "T175",
            "bank": "deep",
            "vial_count": "0",
            "cells_per_vial": "1e6",
            "volume_ml": "1",
        }
    )
    with (
        app.test_request_context("/"),
        using_language("zh_Hans"),
        pytest.raises(InvalidInput) as chinese,
    ):
        load_form(schemas.BankFreezeIn(), form)
    assert chinese.value.errors["bank"] == ["主细胞库或工作细胞库。"]
    assert chinese.value.errors["vial_count"] == ["应在 1 到 200 之间。"]
    with app.test_request_context("/"), pytest.raises(InvalidInput) as english:
        load_form(schemas.PassageIn(), form)
    # the fixed sentences name the schema's limits
    assert english.value.errors["vessel_count"] == [
        f"Between 1 and {processing.MAX_VESSELS_PER_STEP}."
    ]
    with app.test_request_context("/"), pytest.raises(InvalidInput) as english:
        load_form(schemas.BankFreezeIn(), form)
    assert english.value.errors["vial_count"] == [f"Between 1 and {processing.MAX_BAGS_PER_LOT}."]


def test_the_limits_a_step_went_beyond_read_in_the_readers_language(bench: Any) -> None:
    donation = bench.lab.eligible_donation()
    vessels = bench.p5(donation)
    deviation = bench.authorised_excursion(donation, max_passage=6)
    p6 = bench.outputs(
        bench.passage(vessels, harvested=4.0e5, seed=[1.0e5], deviation_id=deviation.id)
    )
    lot = bench.fill(
        p6,
        harvested=4.0e5,
        bags=1,
        volume_ml=1.0,
        total_cells_per_ml=1.0e5,
        deviation_id=deviation.id,
    )
    with using_language("zh_Hans"):
        chinese = batch_record.batch_record(db.session, lot).excursions
    english = batch_record.batch_record(db.session, lot).excursions
    assert english[0].exceeded == ["passage P6 (maximum P5)"]
    assert chinese[0].exceeded == ["传代 P6（上限 P5）"]
