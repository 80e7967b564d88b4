"""ISBT 128 compound message: building, reading, refusing, and its Data Matrix symbol."""

from __future__ import annotations

import datetime as dt

import pytest
import zxingcpp
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from cellchain.config import DEMO_FACILITY_CODE
from cellchain.core.identifiers import check_character, make_din
from cellchain.labels.isbt128 import (
    CompoundMessage,
    IsbtError,
    compound_message,
    datamatrix_modules,
    din_flags,
    expiry_structure,
    parse_compound_message,
)

# --------------------------------------------------------------------------------------------
# Strategies and fixtures
# --------------------------------------------------------------------------------------------

FIRST = "ABCDEFGHIJKLMNPQRSTUVWXYZ123456789"
MIDDLE = "0123456789ABCDEFGHIJKLMNPQRSTUVWXYZ"
DIGITS = "0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

facility_codes = st.one_of(
    st.just(DEMO_FACILITY_CODE),
    st.builds(
        lambda a, b, c, d, e: a + b + c + d + e,
        st.sampled_from(FIRST),
        st.sampled_from(MIDDLE),
        st.sampled_from(MIDDLE),
        st.sampled_from(DIGITS),
        st.sampled_from(DIGITS),
    ),
)
dins = st.builds(
    lambda facility, year, sequence: make_din(facility, year, sequence).body,
    facility_codes,
    st.integers(0, 99),
    st.integers(1, 999_999),
)
product_codes = st.builds(
    lambda letter, number, donation, division: f"{letter}{number:04d}{donation}{division}",
    st.sampled_from(UPPER),
    st.integers(0, 9999),
    st.sampled_from(UPPER + DIGITS),
    st.text(UPPER + DIGITS, min_size=2, max_size=2),
)
expiries = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2999, 12, 31, 23, 59)
).map(lambda when: when.replace(second=0, microsecond=0))

DEMO_DIN = make_din(DEMO_FACILITY_CODE, 2026, 42).body
PRODUCT = "S1234V00"
EXPIRES = dt.datetime(2026, 3, 1, 14, 30)


def message(din: str = DEMO_DIN) -> str:
    """A valid compound message for ``din`` with the test product code and expiry."""
    return compound_message(din, PRODUCT, EXPIRES)


def draw(modules: list[list[bool]], scale: int = 8, quiet: int = 4) -> Image.Image:
    """Render a module matrix as a black-on-white PIL image with a quiet zone."""
    size = len(modules[0]) + 2 * quiet, len(modules) + 2 * quiet
    image = Image.new("L", size, 255)
    for y, row in enumerate(modules):
        for x, dark in enumerate(row):
            if dark:
                image.putpixel((x + quiet, y + quiet), 0)
    return image.resize((size[0] * scale, size[1] * scale), Image.Resampling.NEAREST)


# --------------------------------------------------------------------------------------------
# DIN flags
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("din", "check", "flags"),
    [("G123498654321", "H", "77"), ("G123417654321", "A", "70")],
)
def test_din_flags_are_published_check_value_plus_60(din: str, check: str, flags: str) -> None:
    assert check_character(din) == check
    assert din_flags(din) == flags


@pytest.mark.parametrize(
    "din", ["", "G12349865432", "G1234986543210", "g123498654321", "O123498654321", " G12349865432"]
)
def test_din_flags_refuse_a_malformed_din(din: str) -> None:
    with pytest.raises(IsbtError):
        din_flags(din)


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def test_expiry_structure_is_century_year_day_hour_minute() -> None:
    # 1 March 2026 is day 31 + 28 + 1 = 060 of a common year.
    assert expiry_structure(EXPIRES) == "&>0260601430"
    # a leap year's last day is day 366
    assert expiry_structure(dt.datetime(2028, 12, 31, 0, 5)) == "&>0283660005"
    assert expiry_structure(dt.datetime(2126, 1, 1, 9, 0)) == "&>1260010900"


def test_expiry_structure_of_a_date_is_end_of_day_and_seconds_are_dropped() -> None:
    assert expiry_structure(dt.date(2026, 3, 1)) == "&>0260602359"
    assert expiry_structure(dt.datetime(2026, 3, 1, 14, 30, 59, 999_999)) == "&>0260601430"


@pytest.mark.parametrize(
    "when",
    [
        dt.datetime(1999, 12, 31, 23, 59),
        dt.datetime(3000, 1, 1),
        dt.datetime(2026, 3, 1, 14, 30, tzinfo=dt.UTC),
    ],
)
def test_expiry_structure_refuses_unwritable_times(when: dt.datetime) -> None:
    with pytest.raises(IsbtError):
        expiry_structure(when)


def test_compound_message_layout() -> None:
    din = "G123498654321"
    assert compound_message(din, PRODUCT, EXPIRES) == (
        "=+03000" + "=G12349865432177" + "=<S1234V00" + "&>0260601430"
    )


@pytest.mark.parametrize(
    "product", ["S1234V0", "S1234V000", "s1234V00", "11234V00", "S12A4V00", "S1234v00", "S1234V0-"]
)
def test_compound_message_refuses_a_malformed_product_code(product: str) -> None:
    with pytest.raises(IsbtError, match=r"[Pp]roduct code"):
        compound_message(DEMO_DIN, product, EXPIRES)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@settings(max_examples=200)
@given(din=dins, product=product_codes, expires_at=expiries)
def test_round_trip(din: str, product: str, expires_at: dt.datetime) -> None:
    text = compound_message(din, product, expires_at)
    assert parse_compound_message(text) == CompoundMessage(
        din=din, flags=din_flags(din), product_code=product, expires_at=expires_at, text=text
    )


@given(
    din=dins,
    order=st.permutations([0, 1, 2]),
)
def test_structures_are_read_in_any_order(din: str, order: list[int]) -> None:
    text = message(din)
    header, body = text[:7], text[7:]
    parts = [body[:16], body[16:26], body[26:]]
    reordered = header + "".join(parts[i] for i in order)
    parsed = parse_compound_message(reordered)
    assert (parsed.din, parsed.product_code, parsed.expires_at) == (din, PRODUCT, EXPIRES)
    assert parsed.text == reordered


@given(din=dins, data=st.data())
def test_a_changed_din_character_no_longer_matches_its_flags(din: str, data: st.DataObject) -> None:
    # Change one digit of the sequence number: the DIN keeps its shape, only the check fails.
    index = data.draw(st.integers(7, 12), label="index")
    digit = data.draw(st.sampled_from(DIGITS.replace(din[index], "")), label="digit")
    tampered = din[:index] + digit + din[index + 1 :]
    assume(tampered[7:] != "000000")
    text = message(din).replace("=" + din, "=" + tampered)
    with pytest.raises(IsbtError, match=r"check digits .* do not match DIN"):
        parse_compound_message(text)


def test_a_changed_facility_character_no_longer_matches_its_flags() -> None:
    text = message()
    assert DEMO_DIN.startswith("X9999")
    with pytest.raises(IsbtError, match="do not match"):
        parse_compound_message(text.replace("=X9999", "=Y9999"))


def test_parsed_demo_message() -> None:
    text = message()
    parsed = parse_compound_message(text)
    assert parsed.din == DEMO_DIN
    assert parsed.flags == din_flags(DEMO_DIN)
    assert parsed.product_code == PRODUCT
    assert parsed.expires_at == EXPIRES
    assert parsed.text == text


VALID = message()
HEADER, DIN_PART, PRODUCT_PART, EXPIRY_PART = VALID[:7], VALID[7:23], VALID[23:33], VALID[33:]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "Nothing was scanned"),
        (VALID[1:], "not an ISBT 128 label code"),
        ("=-" + VALID[2:], "not an ISBT 128 label code"),
        ("=+0x000" + VALID[7:], "start of the scanned ISBT 128 code is damaged"),
        # reference number too short
        ("=+03" + "00" + VALID[7:], "start of the scanned ISBT 128 code is damaged"),
        ("=+00000" + VALID[7:], "holds no parts"),
        ("=+02000" + VALID[7:], "extra characters"),  # count too small: one part left over
        ("=+04000" + VALID[7:], "ends after 3"),  # count too large
        (VALID + "X", "extra characters 'X'"),
        (VALID + "\r\n", "extra characters"),
        (HEADER + DIN_PART + DIN_PART + PRODUCT_PART, "holds the DIN twice"),
        (HEADER + DIN_PART + PRODUCT_PART + PRODUCT_PART, "holds the product code twice"),
        ("=+02000" + DIN_PART + PRODUCT_PART, "has no expiry"),
        ("=+01000" + EXPIRY_PART, "has no DIN"),
        (HEADER + DIN_PART + "=%5100" + EXPIRY_PART, "has '=%' at position 24, which starts none"),
        (HEADER + DIN_PART + PRODUCT_PART + "=>026060", "has '=>' at position 34"),
        (HEADER + "=O" + DIN_PART[2:] + PRODUCT_PART + EXPIRY_PART, "starts none of its parts"),
        (HEADER + DIN_PART + PRODUCT_PART + EXPIRY_PART[:-1], "cut short"),
        (VALID.lower(), "has '=x' at position 8"),
    ],
)
def test_malformed_messages_are_refused(text: str, expected: str) -> None:
    with pytest.raises(IsbtError, match=expected):
        parse_compound_message(text)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [("00", "no check"), ("97", "not its check digits"), ("5A", "not its check digits")],
)
def test_din_flags_must_be_check_flags(flags: str, expected: str) -> None:
    text = HEADER + "=" + DEMO_DIN + flags + PRODUCT_PART + EXPIRY_PART
    with pytest.raises(IsbtError, match=expected):
        parse_compound_message(text)


def test_a_malformed_din_is_refused_before_its_flags() -> None:
    # sequence 000000 is never issued
    din = DEMO_DIN[:7] + "000000"
    text = HEADER + "=" + din + "60" + PRODUCT_PART + EXPIRY_PART
    with pytest.raises(IsbtError, match="Not a valid DIN"):
        parse_compound_message(text)


def test_a_malformed_product_code_is_refused() -> None:
    with pytest.raises(IsbtError, match="Product code"):
        parse_compound_message(HEADER + DIN_PART + "=<S12 4V00" + EXPIRY_PART)


@pytest.mark.parametrize(
    ("expiry", "expected"),
    [
        ("&>0263661430", "day 366 of 2026"),  # 2026 is a common year
        ("&>0280001430", "day 000"),
        ("&>0260602400", "not a time of day"),
        ("&>0260601460", "not a time of day"),
        ("&>02606014 0", "10 digits"),
    ],
)
def test_impossible_expiry_dates_are_refused(expiry: str, expected: str) -> None:
    with pytest.raises(IsbtError, match=expected):
        parse_compound_message(HEADER + DIN_PART + PRODUCT_PART + expiry)


def test_leap_day_366_is_read() -> None:
    parsed = parse_compound_message(HEADER + DIN_PART + PRODUCT_PART + "&>0283662359")
    assert parsed.expires_at == dt.datetime(2028, 12, 31, 23, 59)


def test_isbt_error_is_a_value_error() -> None:
    assert issubclass(IsbtError, ValueError)


# --------------------------------------------------------------------------------------------
# Data Matrix
# --------------------------------------------------------------------------------------------


def test_datamatrix_modules_form_a_bare_square_symbol() -> None:
    modules = datamatrix_modules(VALID)
    size = len(modules)
    assert all(len(row) == size for row in modules)
    assert all(row[0] for row in modules)  # finder pattern, left
    assert all(modules[-1])  # finder pattern, bottom
    assert not modules[0][-1]  # timing pattern: top-right module is light


@pytest.mark.parametrize("din", [DEMO_DIN, "G123498654321", "G123417654321"])
def test_datamatrix_decodes_back_to_the_message(din: str) -> None:
    text = message(din)
    image = draw(datamatrix_modules(text))

    results = zxingcpp.read_barcodes(image)

    assert [result.format for result in results] == [zxingcpp.BarcodeFormat.DataMatrix]
    assert results[0].text == text
    parsed = parse_compound_message(results[0].text)
    assert parsed.din == din
    assert parsed.flags == din_flags(din)
    assert int(parsed.flags) - 60 == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*".index(
        check_character(din)
    )


@pytest.mark.parametrize("text", ["", "é"])
def test_datamatrix_refuses_empty_or_non_ascii_text(text: str) -> None:
    with pytest.raises(IsbtError):
        datamatrix_modules(text)
