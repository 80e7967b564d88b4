"""Issue 16 item 7: a passage or CPD beyond the product's limit is refused on every step and
path unless it names a limit-excursion deviation that QA authorised with a signed reason; the
step records it, the lot shows it, and the lot's release stays blocked."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest
from sqlalchemy import select, update

from cellchain.chain import service as chain
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput, PermissionDenied
from cellchain.extensions import db
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.models import ExcursionAuthorisation, ProcessingStep
from cellchain.manufacturing.processing import processing
from cellchain.quality import disposition
from tests.conftest import TEST_PASSWORD
from tests.support.tamper import outside_the_trail


def steps_of(donation: Any) -> int:
    return len(processing.steps_of_donation(db.session, donation.id))


def refused_p6(bench: Any, vessels: list[Any], deviation_id: int | None = None) -> Conflict:
    with pytest.raises(Conflict) as refused:
        bench.passage(vessels, harvested=4.0e5, seed=[1.0e5], deviation_id=deviation_id)
    db.session.rollback()
    return refused.value


def open_excursion(bench: Any, donation: Any, **kwargs: Any) -> Any:
    deviation = deviations.open_deviation(
        db.session,
        lot=None,
        donation=donation,
        category=kwargs.pop("category", "limit_excursion"),
        description="One more passage is needed for the dose",
        actor=bench.lab.tech,
        now=utcnow(),
    )
    db.session.commit()
    return deviation


# --- the service ----------------------------------------------------------------------------------


def test_a_p6_passage_is_refused_naming_the_limit_and_what_to_do(bench):
    donation = bench.lab.eligible_donation()
    vessels = bench.p5(donation)
    before = steps_of(donation)
    error = refused_p6(bench, vessels)
    assert "passage P6 (maximum P5)" in error.detail and "UC-MSC v1" in error.detail
    assert "limit-excursion deviation" in error.detail and "QA" in error.detail
    assert error.errors["deviation_id"] and error.title == "Product limit exceeded"
    assert steps_of(donation) == before  # nothing saved
    assert chain.get_unit(db.session, vessels[0].id).status == "quarantine"  # still usable


def test_every_step_that_makes_cells_is_held_to_the_limits(bench):
    """Fill and bank thaw too, not just the passage: the check is where every step is written."""
    donation = bench.lab.eligible_donation()
    vessels = bench.p5(donation)
    small = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1, cells=100.0))
    for _ in range(2):  # 100 → 1.6e7 cells is 17.3 doublings a passage: CPD 34.6
        small = bench.outputs(bench.passage(small, harvested=1.6e7, seed=[100.0]))
    with pytest.raises(Conflict, match=r"fill would take .* cumulative PD 51\.9 \(maximum 40\)"):
        bench.fill(small, harvested=1.6e7, bags=1, volume_ml=0.01)
    db.session.rollback()
    vials = bench.outputs(
        processing.bank_freeze(
            db.session,
            vessels_in=vessels,
            harvest=processing.Harvest(4.0e5, 96),
            vial_count=2,
            cells_per_vial=1.0e5,
            volume_ml=1.0,
            context=bench.context(),
            actor=bench.lab.tech,
            now=utcnow(),
        )
    )
    db.session.commit()
    with pytest.raises(Conflict, match=r"bank thaw would take .* passage P6 \(maximum P5\)"):
        processing.bank_thaw(
            db.session,
            vial=vials[0],
            viability_percent=90,
            vessels_out=[processing.Vessel("T175", 9e4)],
            context=bench.context(),
            actor=bench.lab.tech,
            now=utcnow(),
            zone=UTC,
        )
    db.session.rollback()
    deviation = bench.authorised_excursion(donation, max_passage=6)
    thaw = processing.bank_thaw(
        db.session,
        vial=vials[0],
        viability_percent=90,
        vessels_out=[processing.Vessel("T175", 9e4)],
        context=bench.context(deviation_id=deviation.id),
        actor=bench.lab.tech,
        now=utcnow(),
        zone=UTC,
    )
    assert thaw.passage == 6 and thaw.deviation_id == deviation.id


def test_a_fill_from_p6_vessels_needs_the_deviation_too(bench):
    donation = bench.lab.eligible_donation()
    deviation = bench.authorised_excursion(donation, max_passage=6)
    p6 = bench.outputs(
        bench.passage(bench.p5(donation), harvested=4.0e5, seed=[1.0e5], deviation_id=deviation.id)
    )
    with pytest.raises(Conflict, match=r"fill would take .* passage P6"):
        bench.fill(p6, harvested=4.0e5, bags=1, volume_ml=0.01)
    db.session.rollback()
    assert processing.list_lots(db.session) == []  # no lot made
    lot = bench.fill(p6, harvested=4.0e5, bags=1, volume_ml=0.01, deviation_id=deviation.id)
    assert lot.final_passage == 6 and lot.limit_flags == ["passage P6 exceeds the maximum P5"]


def test_a_deviation_not_yet_authorised_closed_or_of_another_kind_does_not_authorise(bench):
    lab = bench.lab
    donation = lab.eligible_donation()
    vessels = bench.p5(donation)
    pending = open_excursion(bench, donation)
    assert "QA has not authorised it" in refused_p6(bench, vessels, pending.id).detail
    process = open_excursion(bench, donation, category="process")
    assert "it is a process deviation" in refused_p6(bench, vessels, process.id).detail
    with pytest.raises(Conflict, match="only a limit-excursion deviation"):
        deviations.authorise_excursion(
            db.session,
            process,
            max_passage=6,
            max_cumulative_pd=None,
            justification="x",
            user=lab.qa,
            password=TEST_PASSWORD,
            now=utcnow(),
        )
    db.session.rollback()
    closed = bench.authorised_excursion(donation, max_passage=6)
    deviations.close_deviation(
        db.session, closed, resolution="done", user=lab.qa, password=TEST_PASSWORD, now=utcnow()
    )
    db.session.commit()
    assert "it is closed" in refused_p6(bench, vessels, closed.id).detail
    with pytest.raises(InvalidInput, match="no deviation #9999"):
        bench.passage(vessels, harvested=4.0e5, seed=[1.0e5], deviation_id=9999)


def test_a_deviation_for_another_donation_does_not_authorise(bench):
    donation, other = bench.lab.eligible_donation(), bench.lab.eligible_donation()
    theirs = bench.authorised_excursion(other, max_passage=6)
    error = refused_p6(bench, bench.p5(donation), theirs.id)
    assert f"it is for another donation, not {donation.din}" in error.detail


def test_only_qa_authorises_and_only_beyond_the_limit(bench, make_user):
    lab = bench.lab
    donation = lab.eligible_donation()
    deviation = open_excursion(bench, donation)
    for user in (lab.tech, lab.qc, make_user("ada", "admin")):
        with pytest.raises(PermissionDenied, match="Only Quality assurance"):
            deviations.authorise_excursion(
                db.session,
                deviation,
                max_passage=6,
                max_cumulative_pd=None,
                justification="why",
                user=user,
                password=TEST_PASSWORD,
                now=utcnow(),
            )
        db.session.rollback()
    assert deviation.authorisation is None
    assert "QA has not authorised it" in refused_p6(bench, bench.p5(donation), deviation.id).detail

    def authorise(**values: Any) -> Any:
        return deviations.authorise_excursion(
            db.session, deviation, user=lab.qa, password=TEST_PASSWORD, now=utcnow(), **values
        )

    with pytest.raises(InvalidInput, match="within the product's maximum P5"):
        authorise(max_passage=5, max_cumulative_pd=None, justification="why")
    with pytest.raises(InvalidInput, match="not beyond the product's maximum 40"):
        authorise(max_passage=None, max_cumulative_pd=40, justification="why")
    with pytest.raises(InvalidInput, match="Name the highest passage"):
        authorise(max_passage=None, max_cumulative_pd=None, justification="why")
    with pytest.raises(InvalidInput, match="required"):
        authorise(max_passage=6, max_cumulative_pd=None, justification="  ")
    authorise(max_passage=6, max_cumulative_pd=None, justification="why")
    db.session.commit()
    with pytest.raises(Conflict, match="already authorised"):
        authorise(max_passage=7, max_cumulative_pd=None, justification="more")


def test_the_authorisation_covers_only_what_it_names(bench):
    donation = bench.lab.eligible_donation()
    deviation = bench.authorised_excursion(donation, max_passage=6)
    p6 = bench.outputs(
        bench.passage(bench.p5(donation), harvested=4.0e5, seed=[1.0e5], deviation_id=deviation.id)
    )
    error = refused_p6(bench, p6, deviation.id)  # P7 now
    assert "it authorises up to P6, not P7" in error.detail
    cpd_only = bench.authorised_excursion(donation, max_cumulative_pd=70)
    assert (
        "authorises no passage beyond the limit, not P7"
        in refused_p6(bench, p6, cpd_only.id).detail
    )
    other = bench.lab.eligible_donation()
    small = bench.outputs(bench.isolate(other, vessels=1, cells=100.0))
    for _ in range(2):
        small = bench.outputs(bench.passage(small, harvested=1.6e7, seed=[100.0]))
    passage_only = bench.authorised_excursion(other, max_passage=6)
    with pytest.raises(Conflict, match=r"authorises no CPD beyond the limit, not CPD 51\.9"):
        bench.passage(small, harvested=1.6e7, seed=[100.0], deviation_id=passage_only.id)


def test_a_tampered_authorisation_no_longer_authorises(bench):
    donation = bench.lab.eligible_donation()
    deviation = bench.authorised_excursion(donation, max_passage=6)
    db.session.execute(
        outside_the_trail(
            update(ExcursionAuthorisation)
            .where(ExcursionAuthorisation.deviation_id == deviation.id)
            .values(max_passage=9)
        )
    )
    db.session.commit()
    db.session.expire_all()
    error = refused_p6(bench, bench.p5(donation), deviation.id)
    assert "no valid QA signature" in error.detail


def test_an_authorised_excursion_still_blocks_release(bench, make_user):
    donation = bench.lab.eligible_donation()
    deviation = bench.authorised_excursion(donation, max_passage=6)
    p6 = bench.outputs(
        bench.passage(bench.p5(donation), harvested=4.0e5, seed=[1.0e5], deviation_id=deviation.id)
    )
    lot = bench.fill(p6, harvested=4.0e5, bags=1, volume_ml=0.01, deviation_id=deviation.id)
    deviations.close_deviation(
        db.session,
        deviation,
        resolution="Lot kept for investigation only",
        user=bench.lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    found = disposition.review(db.session, lot, now=utcnow())
    limits = next(c for c in found.checks if c.key == "limits")
    assert not limits.ok and "P6" in limits.detail and not found.ready
    with pytest.raises(Conflict, match="cannot be released"):
        disposition.release_lot(
            db.session, lot, user=make_user("rel", "qa"), password=TEST_PASSWORD, now=utcnow()
        )


# --- the API --------------------------------------------------------------------------------------


def passage_body(bench: Any, vessels: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "vessels_in": [v.code for v in vessels],
        # a passage needs its biosafety cabinet and incubator (issue 22)
        "equipment": [bench.equipment[code].id for code in ("BSC-01", "INC-01")],
        "cells_harvested": 4e5,
        "viability_percent": 95,
        "vessel_count": 1,
        "vessel_format": "T175",
        "cells_per_vessel": 1e5,
        **extra,
    }


def test_the_api_refuses_p6_then_accepts_it_with_qa_s_authorisation(bench, clients):
    lab = bench.lab
    tech, qa = clients.api(lab.tech), clients.api(lab.qa)
    donation = lab.eligible_donation()
    vessels = bench.p5(donation)
    refused = tech.post("/api/v1/steps/passage", json=passage_body(bench, vessels))
    assert refused.status_code == 409 and refused.mimetype == "application/problem+json"
    body = refused.get_json()
    assert "passage P6 (maximum P5)" in body["detail"] and "deviation_id" in body["errors"]

    opened = tech.post(
        "/api/v1/deviations",
        json={"category": "limit_excursion", "description": "P6", "donation_id": donation.id},
    )
    assert opened.status_code == 201 and opened.get_json()["donation_id"] == donation.id
    deviation_id = opened.get_json()["id"]
    unauthorised = tech.post(
        "/api/v1/steps/passage", json=passage_body(bench, vessels, deviation_id=deviation_id)
    )
    assert unauthorised.status_code == 409
    assert "QA has not authorised it" in unauthorised.get_json()["detail"]

    sign = {"max_passage": 6, "justification": "Dose short by 8 %", "password": TEST_PASSWORD}
    by_tech = tech.post(f"/api/v1/deviations/{deviation_id}/authorise", json=sign)
    assert by_tech.status_code == 403
    signed = qa.post(f"/api/v1/deviations/{deviation_id}/authorise", json=sign)
    assert signed.status_code == 200, signed.get_json()
    authorisation = signed.get_json()["authorisation"]
    assert authorisation["max_passage"] == 6 and authorisation["authorised_by"] == "alex"
    assert [s["meaning"] for s in authorisation["signatures"]] == [deviations.AUTHORISE_MEANING]
    assert authorisation["signatures"][0]["valid"] is True

    done = tech.post(
        "/api/v1/steps/passage", json=passage_body(bench, vessels, deviation_id=deviation_id)
    )
    assert done.status_code == 201 and done.get_json()["deviation_id"] == deviation_id
    p6 = [chain.resolve_unit(db.session, code) for code in done.get_json()["outputs"]]
    bench.age(p6)  # in culture before their harvest
    lot = bench.fill(p6, harvested=4.0e5, bags=1, volume_ml=0.01, deviation_id=deviation_id)
    record = tech.get(f"/api/v1/lots/{lot.id}").get_json()
    assert record["limit_flags"] == ["passage P6 exceeds the maximum P5"]
    [first, second] = record["excursions"]
    assert first["kind"] == "passage" and second["kind"] == "fill"
    assert first["deviation_id"] == deviation_id and first["exceeded"] == [
        "passage P6 (maximum P5)"
    ]
    assert first["justification"] == "Dose short by 8 %" and first["signature_valid"] is True


# --- the pages ------------------------------------------------------------------------------------


def test_the_bench_page_refuses_p6_keeping_what_was_typed_and_the_lot_shows_the_excursion(
    bench, clients
):
    lab = bench.lab
    web, qa_web = clients.web(lab.tech), clients.web(lab.qa)
    donation = lab.eligible_donation()
    vessels = bench.p5(donation)
    data = {
        "vessels_in": vessels[0].code + "\n",
        "cells_harvested": "4.0e5",
        "viability_percent": "95",
        "vessel_count": "1",
        "vessel_format": "T175",
        "cells_per_vessel": "1e5",
        "equipment": [str(bench.equipment[code].id) for code in ("BSC-01", "INC-01")],
    }
    refused = web.post("/steps/passage", data=data)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 409
    assert "passage P6 (maximum P5)" in page and "4.0e5" in page and 'name="deviation_id"' in page

    opened = web.post(
        "/deviations",
        data={"category": "limit_excursion", "description": "P6 for the dose", "din": donation.din},
    )
    assert opened.status_code == 302
    deviation_url = opened.headers["Location"]
    deviation_id = int(deviation_url.rstrip("/").split("/")[-1])
    assert 'id="authorise-form"' not in web.get(deviation_url).get_data(as_text=True)
    form_page = qa_web.get(deviation_url).get_data(as_text=True)
    assert 'id="authorise-form"' in form_page and "Not authorised yet" in form_page
    wrong = qa_web.post(
        f"/deviations/{deviation_id}/authorise",
        data={"max_passage": "6", "justification": "Dose short", "password": "wrong"},
    )
    assert wrong.status_code == 401 and "Dose short" in wrong.get_data(as_text=True)
    signed = qa_web.post(
        f"/deviations/{deviation_id}/authorise",
        data={
            "max_passage": "6",
            "max_cumulative_pd": "",
            "justification": "Dose short",
            "password": TEST_PASSWORD,
        },
    )
    assert signed.status_code == 302
    shown = qa_web.get(deviation_url).get_data(as_text=True)
    assert "up to P6" in shown and deviations.AUTHORISE_MEANING in shown

    done = web.post("/steps/passage", data={**data, "deviation_id": str(deviation_id)})
    assert done.status_code == 302
    step = db.session.scalars(
        select(ProcessingStep).where(ProcessingStep.deviation_id == deviation_id)
    ).one()
    assert f"deviation #{deviation_id}" in web.get(f"/steps/{step.id}").get_data(as_text=True)
    p6 = bench.outputs(step)
    bench.age(p6)  # in culture before their harvest
    lot = bench.fill(p6, harvested=4.0e5, bags=1, volume_ml=0.01, deviation_id=deviation_id)
    lot_page = web.get(f"/lots/{lot.id}").get_data(as_text=True)
    assert 'id="excursions"' in lot_page and f'data-excursion="{deviation_id}"' in lot_page
    assert "Dose short" in lot_page and "passage P6 (maximum P5)" in lot_page
    assert "VALID" in lot_page and "still blocks release" in lot_page
