"""A forward trace reads its units as plain rows and a recall signs its units by a digest
(issue 20); what people see and what a signature proves stay the same.

- The API's forward answer is, unit for unit, what ``TracedUnitOut`` dumps from ORM units.
- A recall's opening signature (manifest 2) covers every unit it recorded, its status and
  its fate, through a digest; a change to any of them invalidates it. A signature made before
  (manifest 1, every unit listed) still verifies against the same recall.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select, text

from cellchain.chain.models import Unit
from cellchain.core import signatures
from cellchain.core.identifiers import check_character
from cellchain.core.models import Signature
from cellchain.core.types import canonical_json, utcnow
from cellchain.extensions import db
from cellchain.traceability import notices
from cellchain.traceability.models import Recall, RecallTarget, RecallUnit
from cellchain.traceability.recalls import recalls
from cellchain.traceability.trace import trace
from cellchain.traceability.trace.schemas import ReachedUnitsField, TracedUnitOut
from tests.support.recalls import infuse, open_recall
from tests.support.traces import orm_walk


def orm_units(donation_id: int) -> list[trace.TracedUnit]:
    """The units a forward trace from the donation reaches, as ``Unit`` objects, read the way
    the trace read them before issue 20 (its statement, with ORM entities)."""
    return [
        trace.TracedUnit(unit=unit, distance=distance, lot_number=lot_number)
        for unit, distance, lot_number in orm_walk(trace.TraceFrom.DONATION, donation_id)
    ]


def test_the_forward_answer_dumps_each_unit_as_the_unit_schema_does(
    ward, released, clients: Any
) -> None:
    infuse(ward)
    # some units carry a recall notice, the donation's vessels none
    open_recall(ward, RecallTarget.LOT, released.id)
    body = clients.api(ward.clinic.clinician).get(
        f"/api/v1/trace/forward/donation/{released.donation_id}"
    )
    assert body.status_code == 200, body.get_json()
    units = body.get_json()["units"]

    db.session.expire_all()
    traced = orm_units(released.donation_id)
    named = notices.recalls_naming(db.session, units=[t.unit.id for t in traced])
    expected = TracedUnitOut(many=True).dump(
        [trace.TracedUnit(t.unit, t.distance, t.lot_number, named.unit(t.unit.id)) for t in traced]
    )
    assert len(units) == len(traced) > 10
    assert any(u["recalls"] for u in units) and any(not u["recalls"] for u in units)
    assert all(u["unit"]["created_by"] and u["unit"]["din"] for u in units)
    assert units == json.loads(json.dumps(expected))


def opening_validity(recall_id: int) -> list[bool]:
    db.session.expire_all()
    view = recalls.recall_view(db.session, recalls.get_recall(db.session, recall_id))
    return [s.valid for s in view.opening_signatures]


def test_a_recall_signs_its_units_by_a_digest_that_any_change_to_them_breaks(
    ward, released
) -> None:
    infuse(ward)
    recall = open_recall(ward, RecallTarget.LOT, released.id).recall
    recorded = db.session.execute(
        select(Unit.code).join(RecallUnit).where(RecallUnit.recall_id == recall.id)
    ).scalars()
    [stored] = signatures.signatures_of(db.session, recall)
    content = json.loads(stored.content)
    assert signatures.manifest_of(stored.content) == content["manifest"] == 2
    assert content["content"]["units"]["rows"] == len(recall.units) > 1
    # the units are in the digest, not listed one by one
    assert not any(code in stored.content for code in recorded)
    assert opening_validity(recall.id) == [True]

    first = recall.units[0]
    db.session.execute(
        text(
            "UPDATE recall_units SET outcome = 'out_of_use' WHERE recall_id = :r AND unit_id = :u"
        ),
        {"r": recall.id, "u": first.unit_id},
    )
    db.session.commit()
    assert opening_validity(recall.id) == [False]


def test_an_opening_signature_made_before_the_digest_still_verifies(ward, released) -> None:
    infuse(ward)
    recall = open_recall(ward, RecallTarget.LOT, released.id).recall
    # an opening signature as it was made before issue 20 (manifest 1): every unit listed
    listed = canonical_json(
        {
            "entity_type": "recall",
            "entity_id": str(recall.id),
            "content": recall.signed_content(),
        }
    )
    assert signatures.manifest_of(listed) == 1
    [new] = signatures.signatures_of(db.session, recall)
    old = Signature(
        entity_type="recall",
        entity_id=str(recall.id),
        meaning=recalls.OPEN_MEANING,
        signer_id=new.signer_id,
        printed_name=new.printed_name,
        signed_at=utcnow(),
        content_hash=hashlib.sha256(listed.encode()).hexdigest(),
        content=listed,
    )
    db.session.add(old)
    db.session.commit()
    assert opening_validity(recall.id) == [True, True]

    # a unit's code changed behind the recall's back: both manifests see it
    unit = db.session.get(Unit, recall.units[-1].unit_id)
    db.session.execute(
        text("UPDATE units SET code = :c WHERE id = :u"),
        {"c": unit.code[:-1] + ("A" if unit.code[-1] != "A" else "B"), "u": unit.id},
    )
    db.session.commit()
    assert opening_validity(recall.id) == [False, False]
    assert db.session.get(Recall, recall.id) is not None


def test_a_unit_with_no_recorded_maker_is_answered_as_the_unit_schema_does() -> None:
    """``UnitOut`` omits ``created_by`` when the unit has no maker (the relation is empty);
    the forward answer built from rows leaves it out too, instead of ``null``."""
    made_at = dt.datetime(2026, 1, 1, 9, 30, tzinfo=dt.UTC)
    code = "G123426000001V0001" + check_character("G123426000001V0001")
    row = trace.UnitRow(
        7, code, "cryopreserved_bag", "available", 3, "LN2-1", made_at, None, "G123426000001", None
    )
    unit = SimpleNamespace(
        id=7,
        code=code,
        kind="cryopreserved_bag",
        status="available",
        donation_id=3,
        donation=SimpleNamespace(din="G123426000001"),
        location="LN2-1",
        created_at=made_at,
        created_by=None,
    )
    fast = ReachedUnitsField()._serialize([trace.ReachedUnit(row, 0, None)], "units", None)
    slow = TracedUnitOut().dump({"unit": unit, "distance": 0, "lot_number": None, "recalls": []})
    assert "created_by" not in slow["unit"]
    assert fast[0]["unit"] == slow["unit"]
