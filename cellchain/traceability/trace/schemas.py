"""Schemas of traces: the output of a trace forward and back for the API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any

import marshmallow as ma
from flask import Response, current_app
from flask.json.provider import DefaultJSONProvider

from cellchain.chain.schemas import UnitOut
from cellchain.core.identifiers import DIN_LENGTH, UNIT_LENGTH, parse_identifier
from cellchain.core.schemas import SignatureOut
from cellchain.traceability.notice_schemas import RecallNoticeOut, recalls_field

if TYPE_CHECKING:
    from cellchain.traceability.models import Recall
    from cellchain.traceability.trace.trace import ForwardTrace, ReachedUnit, UnitRow


class StartOut(ma.Schema):
    kind = ma.fields.String()
    id = ma.fields.Integer()
    label = ma.fields.String()


class TracedUnitOut(ma.Schema):
    unit = ma.fields.Nested(UnitOut)
    distance = ma.fields.Integer(metadata={"description": "Lineage steps from the start"})
    lot_number = ma.fields.String(allow_none=True)
    recalls = recalls_field()


class ReachedUnitsField(ma.fields.List):  # type: ignore[type-arg]
    """The units of a forward trace, documented as ``List(Nested(TracedUnitOut))`` and dumped
    to exactly what that dumps, by plain code from the trace's rows (``trace.UnitRow``): a
    trace from a reagent lot lists tens of thousands of units, and a nested schema per unit
    cost more than the trace itself (issue 20; ``tests/traceability/test_traceability_http.py``
    compares the two)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(ma.fields.Nested(TracedUnitOut), **kwargs)

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        notices = _RecallNotices()
        return [_traced_answer(traced, notices) for traced in value]


class _RecallNotices:
    """What ``RecallNoticeOut`` dumps of each recall, dumped once: a recall of a reagent lot
    names every unit of a trace from it."""

    def __init__(self) -> None:
        self.schema = RecallNoticeOut()
        self.dumped: dict[int, dict[str, Any]] = {}

    def __call__(self, recalls: Sequence[Recall]) -> list[dict[str, Any]]:
        return [self.one(recall) for recall in recalls]

    def one(self, recall: Recall) -> dict[str, Any]:
        dumped = self.dumped.get(recall.id)
        if dumped is None:
            dumped = self.dumped[recall.id] = self.schema.dump(recall)
        return dumped


def _traced_answer(traced: ReachedUnit, notices: _RecallNotices) -> dict[str, Any]:
    """What ``TracedUnitOut`` dumps of a unit a forward trace reached."""
    return {
        "unit": _unit_answer(traced.unit),
        "distance": traced.distance,
        "lot_number": traced.lot_number,
        "recalls": notices(traced.recalls) if traced.recalls else [],
    }


def _unit_answer(unit: UnitRow) -> dict[str, Any]:
    """What ``UnitOut`` dumps of the unit, from its row: ``created_by`` is left out when no
    one is recorded as its maker (``UnitOut`` reads it through the relation, which is then
    empty, and omits the key)."""
    answer: dict[str, Any] = {
        "id": unit.id,
        "code": unit.code,
        "display": _unit_display(unit.code),
        "kind": unit.kind,
        "status": unit.status,
        "donation_id": unit.donation_id,
        "din": unit.din,
        "location": unit.location,
        "created_at": unit.created_at.isoformat(),
    }
    if unit.created_by_id is not None and unit.created_by_username is not None:
        answer["created_by"] = unit.created_by_username
    return answer


def _unit_display(code: str) -> str:
    """``parse_identifier(code).display`` of a stored unit code, without checking its check
    character again (twice per unit, most of the answer's time): ``G1234 98 654321 V0007
    [K]``. Anything not shaped like a unit code goes through ``parse_identifier``."""
    if len(code) != UNIT_LENGTH + 1:
        return parse_identifier(code).display
    din, suffix = code[:DIN_LENGTH], code[DIN_LENGTH:UNIT_LENGTH]
    return f"{din[:5]} {din[5:7]} {din[7:]} {suffix} [{code[UNIT_LENGTH]}]"


class DoseOrderBriefOut(ma.Schema):
    id = ma.fields.Integer()
    patient = ma.fields.String(attribute="patient.study_id")
    visit = ma.fields.String()
    status = ma.fields.String()
    dose_unit = ma.fields.Function(lambda o: o.dose_unit.code if o.dose_unit else None)


class InfusionBriefOut(ma.Schema):
    id = ma.fields.Integer()
    dose_order_id = ma.fields.Integer()
    patient = ma.fields.String(attribute="patient.study_id")
    status = ma.fields.String()
    started_at = ma.fields.AwareDateTime()
    ended_at = ma.fields.AwareDateTime(allow_none=True)


class ExposedPatientOut(ma.Schema):
    patient_id = ma.fields.Integer(attribute="patient.id")
    study_id = ma.fields.String(attribute="patient.study_id")
    coi = ma.fields.String(attribute="patient.coi")
    infused = ma.fields.Boolean()
    dose_order_ids = ma.fields.Function(lambda e: [o.id for o in e.dose_orders])
    infusion_ids = ma.fields.Function(lambda e: [i.id for i in e.infusions])
    recalls = recalls_field()


class ForwardTraceOut(ma.Schema):
    start = ma.fields.Nested(StartOut)
    units = ReachedUnitsField()
    dose_orders = ma.fields.List(ma.fields.Nested(DoseOrderBriefOut))
    infusions = ma.fields.List(ma.fields.Nested(InfusionBriefOut))
    patients = ma.fields.List(ma.fields.Nested(ExposedPatientOut))
    recalls = recalls_field()


#: units dumped and written to JSON at a time in a forward answer (``forward_answer``)
UNITS_PER_PIECE = 500


def forward_answer(forward: ForwardTrace) -> Response | ForwardTrace:
    """The API's answer of a forward trace: what ``ForwardTraceOut`` dumps, as the app's JSON
    writes it (``jsonify``), byte for byte, but written as it is sent, ``UNITS_PER_PIECE``
    units at a time, instead of all the units' dicts, then the whole text, then its bytes
    at once (issue 20: a trace of 26 138 units is a 9 MB answer, and building it whole left
    the gunicorn worker ~35 MB larger for good, as Python's allocator keeps an arena while
    any object in it lives). Everything read from the database (the recalls' notices
    included) is dumped before the answer is returned: writing it reads nothing.

    The trace itself when the app's JSON is not written the default compact way (debug mode
    indents it): ``flask-smorest`` dumps and writes it whole, as before."""
    provider = current_app.json
    if not isinstance(provider, DefaultJSONProvider) or (
        provider.compact is False or (provider.compact is None and current_app.debug)
    ):
        return forward
    notices = _RecallNotices()
    answer = ForwardTraceOut(exclude=("units",)).dump(forward)
    for traced in forward.units:
        if traced.recalls:
            notices(traced.recalls)
    return Response(
        _forward_pieces(answer, forward.units, notices, provider),
        mimetype=provider.mimetype,
    )


def _forward_pieces(
    answer: dict[str, Any],
    units: Sequence[ReachedUnit],
    notices: _RecallNotices,
    provider: DefaultJSONProvider,
) -> Iterator[bytes]:
    """``provider.response(answer with its "units")``'s text in pieces, as UTF-8 (what a
    ``Response`` encodes it to): the answer's keys in the order ``json.dumps`` writes them,
    the units' list written piece by piece (``_UnitsWriter`` when the provider writes the
    standard way, else each piece's dicts through ``provider.dumps``)."""

    def dumps(value: Any) -> str:
        return provider.dumps(value, separators=(",", ":"))

    writer = _UnitsWriter(notices, dumps) if _UnitsWriter.writes_as(provider) else None
    keys = [*answer, "units"]
    if provider.sort_keys:
        keys.sort()
    head = "{"
    for key in keys:
        name = dumps(key) + ":"
        if key != "units":
            head += f"{name}{dumps(answer[key])},"
            continue
        yield f"{head}{name}[".encode()
        head = ""
        for start in range(0, len(units), UNITS_PER_PIECE):
            part = units[start : start + UNITS_PER_PIECE]
            if writer is not None:
                text = writer.write(part)
            else:
                text = dumps([_traced_answer(t, notices) for t in part])[1:-1]
            yield (text if start == 0 else "," + text).encode()
        head = "],"
    yield (head[:-1] + "}\n").encode()


class _Escaped(dict[str | None, str]):
    """Each string as ``json.dumps`` writes it (ASCII, quoted), None as ``null``, worked out
    once per distinct value: a trace's units share a few kinds, statuses, locations, DINs,
    lot numbers and makers."""

    def __missing__(self, value: str | None) -> str:
        written = self[value] = "null" if value is None else encode_basestring_ascii(value)
        return written


class _UnitsWriter:
    """The JSON text of a forward trace's units, written straight from their rows: exactly
    what ``provider.dumps`` writes of ``_traced_answer``'s dicts (keys sorted, ASCII,
    compact), without a dict per unit or the encoder walking them (issue 20: 26 138 units,
    a 9 MB answer, whose dicts and encoding cost more than the trace itself).

    Only for the standard writer (``writes_as``): Flask's ``DefaultJSONProvider.dumps``,
    sorting keys and escaping to ASCII, whose strings are written by
    ``json.encoder.encode_basestring_ascii`` (the C encoder's, the same function) and whose
    ints by ``int.__repr__`` (what an f-string writes of an int). The times are
    ``isoformat()``'s digits, dashes, colons, ``T``, ``.`` and ``+``: nothing to escape. A
    unit's ``display`` is its code's characters with spaces and brackets, so it needs
    escaping only when its code did (``tests/traceability/test_trace_memory.py`` compares
    the bytes, odd strings included)."""

    def __init__(self, notices: _RecallNotices, dumps: Callable[[Any], str]) -> None:
        self.notices = notices
        self.dumps = dumps
        self.escaped = _Escaped()
        #: ``"created_by":"<name>",`` by username; nothing when no one is recorded
        self.makers: dict[str | None, str] = {None: ""}
        #: ``isoformat()`` by UTC time
        self.times: dict[dt.datetime, str] = {}

    @staticmethod
    def writes_as(provider: DefaultJSONProvider) -> bool:
        """Whether ``provider`` writes JSON as ``_UnitsWriter`` does."""
        return (
            type(provider).dumps is DefaultJSONProvider.dumps
            and provider.sort_keys is True
            and provider.ensure_ascii is True
        )

    def write(self, units: Sequence[ReachedUnit]) -> str:
        """``dumps([_traced_answer(t) for t in units])`` without its brackets."""
        escaped, makers, times = self.escaped, self.makers, self.times
        written = []
        for unit, distance, lot_number, recalls in units:
            unit_id, code, kind, status, donation_id, location, created_at, maker_id, din, maker = (
                unit
            )
            code_text = encode_basestring_ascii(code)
            if len(code) == _UNIT_CODE_LENGTH and len(code_text) == _UNIT_CODE_LENGTH + 2:
                # _unit_display's, inline
                display_text = f'"{code[:5]} {code[5:7]} {code[7:13]} {code[13:18]} [{code[18]}]"'
            else:
                display_text = encode_basestring_ascii(_unit_display(code))
            # the units a step made share its time: each written once (keyed by UTC times
            # only: an equal time in another zone is written with another offset)
            if created_at.tzinfo is dt.UTC:
                at = times.get(created_at)
                if at is None:
                    at = times[created_at] = created_at.isoformat()
            else:
                at = created_at.isoformat()
            made_by = ""
            if maker_id is not None:
                made_by = makers.get(maker)  # type: ignore[assignment]
                if made_by is None:
                    made_by = makers[maker] = f'"created_by":{escaped[maker]},'
            named = self.dumps(self.notices(recalls)) if recalls else "[]"
            written.append(
                f'{{"distance":{distance},"lot_number":{escaped[lot_number]},'
                f'"recalls":{named},"unit":{{"code":{code_text},'
                f'"created_at":"{at}",{made_by}"din":{escaped[din]},'
                f'"display":{display_text},"donation_id":{donation_id},"id":{unit_id},'
                f'"kind":{escaped[kind]},"location":{escaped[location]},'
                f'"status":{escaped[status]}}}}}'
            )
        return ",".join(written)


#: a unit code's length with its check character (``_unit_display``)
_UNIT_CODE_LENGTH = UNIT_LENGTH + 1
assert DIN_LENGTH == 13 and UNIT_LENGTH == 18, "_UnitsWriter.write's display slices"


def _signatures(signed: Any) -> Any:
    return SignatureOut(many=True).dump(signed.signatures) if signed else []


class TracedStepOut(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String()
    performed_at = ma.fields.AwareDateTime()
    performed_by = ma.fields.String(attribute="performed_by.username")
    inputs = ma.fields.Function(lambda s: [su.unit.code for su in s.units if su.role == "input"])
    outputs = ma.fields.Function(lambda s: [su.unit.code for su in s.units if su.role == "output"])
    materials = ma.fields.Function(lambda s: [m.material_lot.label for m in s.materials])
    equipment = ma.fields.Function(lambda s: [e.item.code for e in s.equipment])


class TracedResultOut(ma.Schema):
    test_code = ma.fields.String()
    value = ma.fields.Raw()
    unit = ma.fields.String(allow_none=True)
    passes = ma.fields.Boolean()
    status = ma.fields.String()
    analyst = ma.fields.String(attribute="analyst.username")
    tested_on = ma.fields.Date()


class LotReleaseOut(ma.Schema):
    lot_number = ma.fields.String(attribute="lot.lot_number")
    status = ma.fields.String(attribute="lot.status")
    expires_at = ma.fields.AwareDateTime(attribute="lot.expires_at", allow_none=True)
    results = ma.fields.List(ma.fields.Nested(TracedResultOut))
    decision = ma.fields.Function(
        lambda r: r.disposition.record.decision if r.disposition else None
    )
    decided_at = ma.fields.Function(
        lambda r: r.disposition.record.decided_at.isoformat() if r.disposition else None
    )
    signatures = ma.fields.Function(lambda r: _signatures(r.disposition))


class EventOut(ma.Schema):
    unit = ma.fields.String(attribute="unit.code")
    event_type = ma.fields.String()
    at = ma.fields.AwareDateTime()
    actor = ma.fields.Function(lambda e: e.actor.username if e.actor else None)
    location = ma.fields.String(allow_none=True)
    counterparty = ma.fields.String(allow_none=True)
    temperature_c = ma.fields.Float(allow_none=True)
    note = ma.fields.String(allow_none=True)


class TracedCheckOut(ma.Schema):
    id = ma.fields.Function(lambda s: s.record.id)
    verdict = ma.fields.Function(lambda s: s.record.verdict)
    checked_at = ma.fields.Function(lambda s: s.record.checked_at.isoformat())
    checked_by = ma.fields.Function(lambda s: s.record.checked_by.username)
    failed = ma.fields.Function(lambda s: [c["code"] for c in s.record.failed])
    signatures = ma.fields.Function(_signatures)


class ClinicPathOut(ma.Schema):
    dose_order = ma.fields.Function(lambda p: DoseOrderBriefOut().dump(p.order.record))
    second_check_signatures = ma.fields.Function(lambda p: _signatures(p.order))
    shipment = ma.fields.Function(
        lambda p: (
            {
                "id": p.shipment.record.id,
                "shipper_id": p.shipment.record.shipper_id,
                "status": p.shipment.record.status,
                "received_at": p.shipment.record.received_at.isoformat()
                if p.shipment.record.received_at
                else None,
            }
            if p.shipment
            else None
        )
    )
    thaws = ma.fields.Function(
        lambda p: [
            {
                "unit_id": t.unit_id,
                "started_at": t.started_at.isoformat(),
                "completed_at": t.completed_at.isoformat() if t.completed_at else None,
            }
            for t in p.thaws
        ]
    )
    bedside_checks = ma.fields.List(ma.fields.Nested(TracedCheckOut))
    infusion = ma.fields.Function(
        lambda p: InfusionBriefOut().dump(p.infusion) if p.infusion else None
    )


class BackTraceOut(ma.Schema):
    start = ma.fields.Nested(StartOut)
    donation = ma.fields.Function(
        lambda b: {
            "id": b.donation.id,
            "din": b.donation.din,
            "eligibility": b.donation.eligibility,
            "donor_code": b.donation.donor.code,
            "collected_at": b.donation.collected_at.isoformat(),
        }
    )
    eligibility_signatures = ma.fields.Function(lambda b: _signatures(b.eligibility))
    units = ma.fields.List(ma.fields.Nested(TracedUnitOut))
    steps = ma.fields.List(ma.fields.Nested(TracedStepOut))
    lots = ma.fields.List(ma.fields.Nested(LotReleaseOut))
    events = ma.fields.List(ma.fields.Nested(EventOut))
    clinic = ma.fields.List(ma.fields.Nested(ClinicPathOut))
    recalls = recalls_field()
