"""The forward trace's answer is written in pieces (issue 20, the memory row): a trace from a
reagent lot lists tens of thousands of units, and building the whole answer as dicts, then
as one JSON text, then as its bytes left the gunicorn worker that made it ~35 MB larger for
good (Python's allocator keeps an arena while one object in it lives). What the client
receives stays byte for byte what ``ForwardTraceOut`` dumped and Flask's JSON wrote."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask, Response, current_app

from cellchain.extensions import db
from cellchain.traceability.models import RecallTarget
from cellchain.traceability.trace import schemas, trace
from cellchain.traceability.trace.schemas import ForwardTraceOut
from tests.support.recalls import infuse, open_recall


def answer_as_it_was(kind: str, record_id: int) -> bytes:
    """The answer as the API made it before: the schema's dump, Flask's ``jsonify``."""
    db.session.expire_all()
    forward = trace.trace_forward(db.session, kind, record_id)
    answer = trace.with_recalls(forward, trace.recalls_of(db.session, forward))
    written: Any = current_app.json.response(ForwardTraceOut().dump(answer))
    return bytes(written.get_data())


@pytest.mark.parametrize("units_per_piece", [1, 3, 5000])
def test_the_forward_answer_is_written_in_pieces_byte_for_byte_as_before(
    ward: Any, released: Any, clients: Any, monkeypatch: pytest.MonkeyPatch, units_per_piece: int
) -> None:
    monkeypatch.setattr(schemas, "UNITS_PER_PIECE", units_per_piece)
    infuse(ward)
    ward.prepared()  # a second dose, not infused
    open_recall(ward, RecallTarget.LOT, released.id)
    api = clients.api(ward.clinic.clinician)

    for kind, record_id in (("donation", released.donation_id), ("lot", released.id)):
        response = api.get(f"/api/v1/trace/forward/{kind}/{record_id}")
        assert response.status_code == 200, response.get_json()
        assert response.headers["Content-Type"] == "application/json"
        body = response.get_data()
        expected = answer_as_it_was(kind, record_id)
        answer = response.get_json()
        # sent as written: the head, the units a piece at a time, the tail; never all at once
        pieces = -(-len(answer["units"]) // units_per_piece)
        assert len(response.response) == pieces + 2
        assert "Content-Length" not in response.headers
        assert answer["units"] and answer["dose_orders"] and answer["infusions"]
        assert any(u["recalls"] for u in answer["units"]) and answer["recalls"]
        assert any(p["infused"] for p in answer["patients"])
        assert any(not p["infused"] for p in answer["patients"])
        assert body == expected


def nothing_reached() -> trace.ForwardTrace:
    """A forward trace from a piece of equipment that reached no unit."""
    return trace.ForwardTrace(
        start=trace.Start(kind="equipment", id=1, label="equipment EQ-1"),
        units=[],
        dose_orders=[],
        infusions=[],
        patients=[],
    )


def test_a_forward_answer_of_no_units_is_the_same_too(app: Flask) -> None:
    """Nothing reached (``"units":[]``): the pieces are what the dump wrote."""
    empty = nothing_reached()
    with app.test_request_context():
        response = schemas.forward_answer(empty)
        assert isinstance(response, Response)
        written: Any = current_app.json.response(ForwardTraceOut().dump(empty))
        assert (
            response.get_data()
            == written.get_data()
            == b'{"dose_orders":[],"infusions":[],"patients":[],"recalls":[],'
            b'"start":{"id":1,"kind":"equipment","label":"equipment EQ-1"},"units":[]}\n'
        )


def test_in_debug_mode_the_indented_answer_is_left_to_the_schema(app: Flask) -> None:
    """Debug mode indents the app's JSON: the trace goes back whole, for flask-smorest to
    dump and write as before."""
    empty = nothing_reached()
    app.debug = True
    try:
        with app.test_request_context():
            assert schemas.forward_answer(empty) is empty
    finally:
        app.debug = False


def test_no_cached_statement_keeps_the_unit_ids_of_a_trace(
    ward: Any, released: Any, clients: Any
) -> None:
    """SQLAlchemy's statement cache keeps the values of the first statement it compiled: the
    unit ids of the first forward trace, sent as a list, were kept by it, and with them the
    memory the trace's rows were read into (issue 20; ``notices.among`` sends their text)."""
    infuse(ward)
    api = clients.api(ward.clinic.clinician)
    cache = db.engine._compiled_cache
    assert cache is not None
    cache.clear()  # this trace's statements are the first the cache keeps
    response = api.get(f"/api/v1/trace/forward/donation/{released.donation_id}")
    assert response.status_code == 200, response.get_json()
    ids = {u["unit"]["id"] for u in response.get_json()["units"]}
    assert len(ids) > 10
    kept = [
        bind.value
        for compiled in cache.values()
        if compiled.cache_key is not None
        for bind in compiled.cache_key.bindparams
        if isinstance(bind.value, list | tuple) and ids <= set(bind.value)
    ]
    assert kept == []


def test_a_big_forward_answer_gives_the_freed_memory_back_once_sent(
    ward: Any, released: Any, clients: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """glibc's ``malloc_trim`` after an answer of ``RETURN_MEMORY_FROM_UNITS`` units or more
    (it kept the heap the big answer freed), not after smaller ones."""
    from cellchain import http
    from cellchain.traceability.trace import api as trace_api

    calls: list[str] = []
    monkeypatch.setattr(trace_api, "return_freed_memory", lambda: calls.append("trim"))
    client = clients.api(ward.clinic.clinician)
    path = f"/api/v1/trace/forward/donation/{released.donation_id}"
    units = len(client.get(path).get_json()["units"])
    assert calls == []
    monkeypatch.setattr(trace_api, "RETURN_MEMORY_FROM_UNITS", units)
    response = client.get(path)
    assert response.status_code == 200
    response.close()
    assert calls == ["trim"]
    http.return_freed_memory()  # the call itself, here and wherever the tests run


def odd_units() -> list[trace.ReachedUnit]:
    """Rows a forward trace could read, with whatever JSON has to escape: quotes, backslashes,
    control characters, DEL, accents, a character outside the BMP; a maker not recorded, a
    maker's name missing; no lot; a code not shaped like a unit's; times with and without
    microseconds, one the same instant in another zone as a UTC one before it."""
    utc = dt.datetime(2026, 12, 7, 8, 1, 2, 345678, tzinfo=dt.UTC)
    elsewhere = utc.astimezone(dt.timezone(dt.timedelta(hours=2)))
    rows = [
        (
            1,
            "G123498654321V0007A",
            "cryobag",
            "available",
            3,
            "LN2 tank 1",
            utc,
            2,
            "G123498654321",
            "qa",
        ),
        (
            2,
            "G123498654321V0008*",
            "cryobag",
            "blocked",
            3,
            'Freezer "B" \\ rack\n3\t\x00\x1f\x7f',
            elsewhere,
            2,
            "G123498654321",
            "qa",
        ),
        (
            3,
            'G1234"8654321V0009B',
            "culture_vessel",
            "available",
            3,
            "Incubator – é ☃ 😀",
            utc.replace(microsecond=0),
            None,
            "G123498654321",
            None,
        ),
        (
            4,
            "G123498654321H",
            "donation_container",
            "consumed",
            3,
            "",
            utc,
            5,
            "G123498654321",
            None,
        ),
        (
            5,
            "G123498654321V0010C",
            "cryobag",
            "quarantine",
            3,
            "LN2 tank 1",
            utc,
            7,
            "G123498654321",
            'renée "r" ☃',
        ),
    ]
    lots = ["LOT-1", None, 'LOT-"2" ü', None, "LOT-1"]
    return [
        trace.ReachedUnit(trace.UnitRow(*row), distance, lot)
        for distance, (row, lot) in enumerate(zip(rows, lots, strict=True))
    ]


@pytest.mark.parametrize("units_per_piece", [1, 2, 500])
def test_odd_strings_are_written_byte_for_byte_as_the_schema_dumps_them(
    app: Flask, monkeypatch: pytest.MonkeyPatch, units_per_piece: int
) -> None:
    """The units' JSON is written from their rows (``schemas._UnitsWriter``), not by dumping
    dicts: the same bytes as ``ForwardTraceOut``'s dump written by Flask, whatever the
    strings hold."""
    monkeypatch.setattr(schemas, "UNITS_PER_PIECE", units_per_piece)
    forward = replace(nothing_reached(), units=odd_units())
    with app.test_request_context():
        response = schemas.forward_answer(forward)
        assert isinstance(response, Response)
        written: Any = current_app.json.response(ForwardTraceOut().dump(forward))
        body = response.get_data()
        assert body == written.get_data()
    units = json.loads(body)["units"]
    assert [u["unit"].get("created_by") for u in units] == ["qa", "qa", None, None, 'renée "r" ☃']
    assert units[1]["unit"]["created_at"].endswith("+02:00")
    assert units[2]["unit"]["display"] == 'G1234 "8 654321 V0009 [B]'
    assert units[3]["unit"]["display"] == "G1234 98 654321 [H]"


def test_another_json_writer_gets_the_units_dumped_as_before(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app whose JSON keeps non-ASCII characters gets each piece's dicts written by its
    own ``dumps``, as before (``_UnitsWriter.writes_as``)."""
    forward = replace(nothing_reached(), units=odd_units())
    monkeypatch.setattr(app.json, "ensure_ascii", False)
    with app.test_request_context():
        assert not schemas._UnitsWriter.writes_as(current_app.json)  # type: ignore[arg-type]
        response = schemas.forward_answer(forward)
        assert isinstance(response, Response)
        written: Any = current_app.json.response(ForwardTraceOut().dump(forward))
        assert response.get_data() == written.get_data()
        assert "☃".encode() in response.get_data()
