"""The QR codes of labels are the symbols the ``qrcode`` library makes, module for module: only
its choice of mask pattern is computed differently (``cellchain/labels/qr.py``), and it must
choose the same pattern, for label payloads and for any text of any version up to 13."""

from __future__ import annotations

import random
import string

import pytest
import qrcode
from hypothesis import given, settings
from hypothesis import strategies as st
from qrcode.constants import ERROR_CORRECT_M

from cellchain.core.identifiers import make_din, make_unit_code
from cellchain.core.payload import encode_payload
from cellchain.labels.layout import qr_modules
from cellchain.labels.qr import qr_matrix


def _qrcode(payload: str) -> tuple[list[list[bool]], int]:
    """What ``qrcode`` makes of ``payload`` by itself, and the version."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0, box_size=1)
    code.add_data(payload)
    code.make(fit=True)
    return [[bool(cell) for cell in row] for row in code.get_matrix()], code.version


def _texts() -> list[str]:
    """Texts of every length up to 300 characters in QR's numeric, alphanumeric and byte
    modes (versions 1 to 13 at error correction M), fixed by a seed."""
    chosen = random.Random(2026)
    alphabets = (
        string.digits,
        string.ascii_uppercase + string.digits + " $%*+-./:",
        string.printable + "—×≤°",
    )
    return [
        "".join(chosen.choice(alphabet) for _ in range(length))
        for length in (1, 5, 10, 17, 25, 32, 47, 60, 78, 90, 120, 154, 200, 250, 300)
        for alphabet in alphabets
        for _ in range(4)
    ]


@pytest.mark.parametrize("payload", _texts())
def test_the_symbol_is_the_one_qrcode_makes(payload: str) -> None:
    expected, _version = _qrcode(payload)
    assert qr_matrix(payload) == expected


def test_the_texts_reach_every_version_up_to_13() -> None:
    versions = {_qrcode(text)[1] for text in _texts()}
    assert set(range(1, 11)) <= versions and max(versions) >= 13


def test_labels_payloads_of_every_kind_are_the_symbols_qrcode_makes() -> None:
    din = make_din("X9999", 26, 4).canonical
    payloads = [
        encode_payload(make_unit_code(din, kind, sequence))
        for kind in ("C", "V", "S", "D", "B")
        for sequence in range(1, 200, 7)
    ]
    for payload in payloads:
        expected, _version = _qrcode(payload)
        assert [list(row) for row in qr_modules(payload)] == expected, payload


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=120))
def test_any_text_gives_the_symbol_qrcode_makes(text: str) -> None:
    expected, _version = _qrcode(text)
    assert qr_matrix(text) == expected
