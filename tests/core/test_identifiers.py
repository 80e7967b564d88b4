"""ISBT 128-style identifiers: check character, builders, parser and its error messages."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellchain.core.identifiers import (
    ALPHABET,
    Identifier,
    InvalidIdentifier,
    check_character,
    format_coi,
    format_din,
    identifier_of_body,
    make_coi,
    make_din,
    make_unit_code,
    parse_identifier,
    type3_flag,
    validate_facility_code,
)
from cellchain.errors import InvalidInput
from tests.support.identifiers import identifiers

# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

bodies = st.text(alphabet=ALPHABET[:-1], min_size=1, max_size=20)


def reference_check(body: str) -> str:
    """The MOD 37-2 algorithm exactly as DOMAIN.md states it, independent of python-stdnum."""
    t = 0
    for char in body:
        t = ((t + ALPHABET.index(char)) * 2) % 37
    return ALPHABET[(38 - t) % 37]


def accepted(text: str) -> bool:
    """Whether parse_identifier accepts ``text`` (any other exception propagates)."""
    try:
        parse_identifier(text)
    except InvalidIdentifier:
        return False
    return True


def refused(text: str) -> InvalidIdentifier:
    """The InvalidIdentifier that parse_identifier raises for ``text``."""
    with pytest.raises(InvalidIdentifier) as info:
        parse_identifier(text)
    return info.value


# --------------------------------------------------------------------------------------------
# Check character and type 3 flag
# --------------------------------------------------------------------------------------------


def test_published_examples() -> None:
    assert check_character("G123498654321") == "H"
    assert check_character("G123417654321") == "A"


@given(bodies)
def test_check_character_matches_the_domain_algorithm(body: str) -> None:
    assert check_character(body) == reference_check(body)


@pytest.mark.parametrize("body", ["", "G1234-8654321", "g123498654321", "G12349865432*"])
def test_check_character_refuses_what_is_not_a_body(body: str) -> None:
    with pytest.raises(InvalidInput):
        check_character(body)


@pytest.mark.parametrize(
    ("din", "flag"),
    [
        ("G123498654321", "77"),  # H = 17
        ("G123417654321", "70"),  # A = 10
        ("G123426000003", "60"),  # 0 = 0, the lowest flag
        ("G123426000188", "84"),  # O = 24
        ("G123426000078", "96"),  # * = 36, the highest flag
    ],
)
def test_type3_flag(din: str, flag: str) -> None:
    assert reference_check(din) == ALPHABET[int(flag) - 60]
    assert type3_flag(din) == flag


@pytest.mark.parametrize("din", ["G12349865432", "G123498654321H"])
def test_type3_flag_needs_a_13_character_din(din: str) -> None:
    with pytest.raises(InvalidInput):
        type3_flag(din)


# --------------------------------------------------------------------------------------------
# Facility code
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("G1234", "G1234"),
        ("g1234", "G1234"),
        (" w0000 ", "W0000"),
        ("1AZ99", "1AZ99"),
        ("N0012", "N0012"),
        ("P9912", "P9912"),
        ("ZZZ00", "ZZZ00"),
        ("90099", "90099"),
    ],
)
def test_good_facility_codes(code: str, expected: str) -> None:
    assert validate_facility_code(code) == expected


@pytest.mark.parametrize(
    ("code", "mentions"),
    [
        ("G123", "has 4"),  # too short
        ("G12345", "has 6"),  # too long
        ("O1234", "'O' at position 1"),  # first is never O
        ("01234", "'0' at position 1"),  # first is never zero
        ("#1234", "'#' at position 1"),
        ("GO234", "'O' at position 2"),  # 2nd is never O
        ("G1O34", "'O' at position 3"),  # 3rd is never O
        ("G1-34", "'-' at position 3"),
        ("G12A4", "'A' at position 4"),  # 4th is a digit
        ("G123A", "'A' at position 5"),  # 5th is a digit
        ("G12O4", "did you mean zero"),
    ],
)
def test_bad_facility_codes(code: str, mentions: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_facility_code(code)
    assert mentions in info.value.detail
    assert info.value.errors["facility_code"] == [info.value.detail]


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def test_format_din_and_coi() -> None:
    assert format_din("G1234", 98, 654321) == "G123498654321"
    assert format_din("g1234", 2026, 7) == "G123426000007"
    assert format_din("G1234", 0, 1) == "G123400000001"
    assert format_din("G1234", 1999, 999_999) == "G123499999999"
    assert format_coi("G1234", 98, 654321) == "CHG123498654321"


def test_make_din_properties() -> None:
    din = make_din("g1234", 1998, 654321)
    assert din == Identifier("DIN", "G123498654321", "H")
    assert din.canonical == "G123498654321H"
    assert din.facility_code == "G1234"
    assert din.year == "98"
    assert din.sequence == 654321
    assert din.display == "G1234 98 654321 [H]"
    assert din.barcode_din == "=G12349865432177"


def test_make_coi_properties() -> None:
    coi = make_coi("G1234", 98, 654321)
    assert coi.kind == "COI"
    assert coi.body == "CHG123498654321"
    # MOD 37-2 over all 15 characters, CH included (not the DIN's H).
    assert coi.check == reference_check("CHG123498654321") == "8"
    assert coi.canonical == "CHG1234986543218"
    assert coi.facility_code == "G1234"
    assert coi.year == "98"
    assert coi.sequence == 654321
    assert coi.display == "CH G1234 98 654321 [8]"
    with pytest.raises(ValueError):
        _ = coi.barcode_din


@pytest.mark.parametrize("sequence", [0, 1_000_000, -1])
@pytest.mark.parametrize("build", [format_din, format_coi, make_din, make_coi])
def test_sequence_bounds(build, sequence: int) -> None:
    with pytest.raises(InvalidInput) as info:
        build("G1234", 26, sequence)
    assert str(sequence) in info.value.detail
    assert "sequence" in info.value.errors


@pytest.mark.parametrize("sequence", [1, 999_999])
def test_sequence_bounds_inclusive(sequence: int) -> None:
    assert make_din("G1234", 26, sequence).sequence == sequence


@pytest.mark.parametrize("year", [-1, 100, 999, 10_000, True, "26"])
def test_bad_years(year) -> None:
    with pytest.raises(InvalidInput):
        format_din("G1234", year, 1)


def test_bad_facility_refused_by_builders() -> None:
    with pytest.raises(InvalidInput):
        make_din("O1234", 26, 1)
    with pytest.raises(InvalidInput):
        make_coi("G12", 26, 1)


@pytest.mark.parametrize(
    ("kind", "body", "check"),
    [
        ("DIN", "G123498654321", "X"),  # wrong check
        ("DIN", "G12349865432", "H"),  # short body
        ("COI", "G123498654321", "H"),  # a DIN is not a COI
        ("XYZ", "G123498654321", "H"),
    ],
)
def test_identifier_refuses_inconsistent_values(kind: str, body: str, check: str) -> None:
    with pytest.raises(ValueError):
        Identifier(kind, body, check)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Parsing: accepted forms
# --------------------------------------------------------------------------------------------


def typed_forms(x: Identifier) -> list[str]:
    """Ways a person or scanner may present ``x``."""
    forms = [
        x.canonical,
        x.display,
        x.display.lower(),
        x.canonical.lower(),
        f"  {x.canonical}\t\r\n",
        x.display.replace(" ", "-").replace("-[", "["),
        " ".join(x.canonical),
        x.body + f"[{x.check}]",
    ]
    if x.kind == "DIN":
        forms += [x.barcode_din, "=" + x.canonical, x.barcode_din.lower()]
    return forms


def forms_without_check(x: Identifier) -> list[str]:
    """The same code with nothing that checks it: refused whatever its kind (DOMAIN.md §7)."""
    forms = [x.body, x.body.lower(), x.display[: -len(" [K]")], f" {x.body}\n"]
    if x.kind == "DIN":
        forms.append("=" + x.body + "00")  # ISBT flag 00: "no check"
    return forms


@pytest.mark.parametrize("make", [make_din, make_coi])
@pytest.mark.parametrize(
    ("facility", "year", "sequence"), [("G1234", 98, 654321), ("w0000", 26, 1)]
)
def test_round_trip_examples(make, facility: str, year: int, sequence: int) -> None:
    x = make(facility, year, sequence)
    for form in typed_forms(x):
        assert parse_identifier(form) == x, form


@settings(max_examples=200)
@given(identifiers)
def test_round_trip_property(x: Identifier) -> None:
    for form in typed_forms(x):
        assert parse_identifier(form) == x, form


@settings(max_examples=200)
@given(identifiers)
def test_no_code_is_accepted_without_its_check_character(x: Identifier) -> None:
    for form in forms_without_check(x):
        error = refused(form)
        assert error.reason == "no_check", form
        assert "needs its check character" in error.detail
        assert x.canonical not in error.detail.replace(" ", ""), "it must not give K away"


def test_identifier_of_body_is_for_codes_the_system_composes() -> None:
    assert identifier_of_body("G123498654321") == make_din("G1234", 98, 654321)
    assert identifier_of_body("CHG123498654321").canonical == "CHG1234986543218"
    with pytest.raises(InvalidInput):
        identifier_of_body("G123498654321H")


def test_published_examples_parse() -> None:
    assert parse_identifier("G123498654321H") == Identifier("DIN", "G123498654321", "H")
    assert parse_identifier("G1234 17 654321 [A]").check == "A"
    assert parse_identifier("=G12349865432177").canonical == "G123498654321H"


def test_unit_code_embeds_its_din_and_needs_its_check_character() -> None:
    din = make_din("X9999", 26, 1)
    unit = make_unit_code(din.display, "V", 7)
    assert unit.canonical == "X999926000001V0007J"
    assert unit.display == "X9999 26 000001 V0007 [J]"
    assert unit.din == din.body
    assert unit.unit_kind_letter == "V"
    assert parse_identifier("x9999-26-000001-v0007 [j]") == unit
    assert refused(unit.body).reason == "no_check"
    assert "needs its check character" in refused(unit.body).detail


@pytest.mark.parametrize(
    ("text", "reason", "mentions"),
    [
        ("X999926000001Q0007J", "structure", "kind letter"),
        ("X999926000001V0000J", "structure", "unit numbers start at 0001"),
        ("X999926000001VOO07J", "structure", "did you mean zero"),
        ("X999926000001V0007Z", "check", "Z is not the check character"),
        ("X999926000000V0007J", "structure", "000000"),
    ],
)
def test_unit_code_errors(text: str, reason: str, mentions: str) -> None:
    error = refused(text)
    assert error.reason == reason
    assert mentions in error.detail


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (("CHX999926000001", "V", 1), "embeds a DIN"),
        (("X999926000001", "Q", 1), "not a unit-kind letter"),
        (("X999926000001", "V", 0), "at most 9999"),
        (("X999926000001", "V", 10000), "at most 9999"),
    ],
)
def test_make_unit_code_refuses_bad_parts(args: tuple[str, str, int], mentions: str) -> None:
    with pytest.raises(InvalidInput, match=mentions):
        make_unit_code(*args)


def test_facility_starting_with_ch_is_a_din() -> None:
    din = make_din("CH123", 26, 42)
    assert parse_identifier(din.canonical) == din
    assert refused(din.body).detail.startswith(f"{din.body!r} looks like a DIN without")
    coi = make_coi("CH123", 26, 42)
    assert coi.body == "CHCH12326000042"
    assert parse_identifier(coi.canonical) == coi


def test_star_check_character_is_accepted() -> None:
    din = make_din("G1234", 26, 78)
    assert din.check == "*"
    assert parse_identifier("G1234 26 000078 [*]") == din
    assert parse_identifier("=G123426000078*") == din
    assert parse_identifier("=G12342600007896") == din


# --------------------------------------------------------------------------------------------
# Parsing: each error, in order
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", " - - ", "\t\n"])
def test_empty(text: str) -> None:
    error = refused(text)
    assert error.reason == "empty"
    assert error.text == text
    assert "No identifier" in error.detail


@pytest.mark.parametrize(
    ("text", "char", "position"),
    [
        ("G12#498654321", "#", 4),
        ("G1234.98.654321", ".", 6),
        ("G12*498654321H", "*", 4),  # '*' is only a check character
        ("G123498654321*0", "*", 14),  # not last
        ("G123498654321*", None, None),  # last and the check position: a check error instead
        ("G12349865432*", "*", 13),  # last, but a 13-character DIN has no check character
        ("=G1234986543*00", "*", 13),
        ("=G12349865432*0", "*", 14),
        ("=G1234986543217*", "*", 16),  # last, but in the flag
        ("G1234=98654321", "=", 6),
        ("G1234[9]8654321", "[", 6),
        ("=<E0713V00", "<", 2),  # an ISBT product code, not a DIN
        ("G1234É8654321", "É", 6),
        ("G1234٩8654321", "٩", 6),  # a non-ASCII digit
        ("G123 4 # 98", "#", 6),  # bad character beats bad length
        ("O1234#8654321", "#", 6),  # ... and bad structure
    ],
)
def test_character_errors(text: str, char: str | None, position: int | None) -> None:
    error = refused(text)
    if char is None:
        assert error.reason == "check"
        return
    assert error.reason == "character"
    assert f"'{char}' at position {position}" in error.detail
    assert error.position == position
    assert error.text == text


def test_character_error_explains_product_codes() -> None:
    assert "product code" in refused("=<E0713V00").detail


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        (
            "G12349865",
            "A DIN has 13 characters, or 14 with its check character (a unit code 18 or 19); "
            "'G12349865' has 9.",
        ),
        ("G12349865432100", "has 15"),
        ("G1", "has 2"),
        ("CHG12349865432100", "chain-of-identity identifier has 15 characters"),
        ("CHG1", "'CHG1' has 4"),
        ("=G123498654321", "has 13 characters after '='"),
        ("=G1234986543217777", "has 17 characters after '='"),
        ("=", "has 0 characters after '='"),
        ("O12", "has 3"),  # bad length beats bad structure
    ],
)
def test_length_errors(text: str, mentions: str) -> None:
    error = refused(text)
    assert error.reason == "length"
    assert mentions in error.detail


@pytest.mark.parametrize(
    ("text", "position", "mentions"),
    [
        ("G1234O8654321", 6, "did you mean zero"),
        ("O123498654321", 1, "did you mean zero"),
        ("0123498654321", 1, "never starts with 0"),
        ("GO23498654321", 2, "did you mean zero"),
        ("G12A498654321", 4, "ends in two digits"),
        ("G1234X8654321", 6, "year"),
        ("G12349865432A", 13, "sequence"),
        ("G12349865432AH", 13, "sequence"),
        ("CHG1234O8654321", 8, "did you mean zero"),
        ("CH0123498654321", 3, "never starts with 0"),
        ("=G12349865A32100", 11, "sequence"),
        ("G123498000000", 8, "000000"),
        ("CHG123498000000", 10, "000000"),
        ("O1234O8654321X", 1, "'O' at position 1"),  # structure beats check
    ],
)
def test_structure_errors(text: str, position: int, mentions: str) -> None:
    error = refused(text)
    assert error.reason == "structure"
    assert error.position == position
    assert mentions in error.detail


def test_structure_error_message_example() -> None:
    assert refused("G1234O8654321").detail == (
        "'G1234O8654321' has 'O' at position 6, which is not allowed there "
        "(letter O is never used; did you mean zero?)."
    )


@pytest.mark.parametrize("flag", ["01", "59", "97", "99", "AB", "0A"])
def test_unknown_flags_are_structure_errors(flag: str) -> None:
    error = refused("=G123498654321" + flag)
    assert error.reason == "structure"
    assert f"'{flag}'" in error.detail


def test_check_mismatch_message() -> None:
    error = refused("G123498654321X")
    assert error.reason == "check"
    assert error.detail == (
        "Check character mismatch: X is not the check character of 'G123498654321'. A "
        "character may be mistyped or two swapped; compare the code with the label character "
        "by character."
    )
    assert "H" not in error.detail.replace("character", "")  # never offers the fitting K
    assert error.position == 14


def test_check_mismatch_in_display_form_and_barcode() -> None:
    assert refused("g1234 98 654312 [h]").reason == "check"  # last two digits swapped
    assert refused("=G123498654321A").reason == "check"
    assert refused("CH G1234 98 654321 [H]").reason == "check"  # the DIN's K is not the COI's


def test_flag_mismatch_message() -> None:
    error = refused("=G12349865432161")
    assert error.reason == "check"
    assert error.detail.startswith("The flag '61' does not match the DIN 'G123498654321'")
    assert "77" not in error.detail
    assert error.position == 15


def test_invalid_identifier_is_invalid_input() -> None:
    error = refused("G1")
    assert isinstance(error, InvalidInput)
    assert error.status == 422
    problem = error.to_problem()
    assert problem["status"] == 422
    assert problem["detail"] == error.detail


# --------------------------------------------------------------------------------------------
# What the check character is for: every single error is caught
# --------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(identifiers)
def test_every_single_substitution_is_refused(x: Identifier) -> None:
    code = x.canonical
    slipped = [
        mutant
        for i, original in enumerate(code)
        for char in ALPHABET
        if char != original
        for mutant in [code[:i] + char + code[i + 1 :]]
        if accepted(mutant)
    ]
    assert slipped == []


@settings(max_examples=200, deadline=None)
@given(identifiers)
def test_every_adjacent_transposition_is_refused(x: Identifier) -> None:
    code = x.canonical
    slipped = [
        mutant
        for i in range(len(code) - 1)
        if code[i] != code[i + 1]
        for mutant in [code[:i] + code[i + 1] + code[i] + code[i + 2 :]]
        if accepted(mutant)
    ]
    assert slipped == []


@settings(max_examples=200, deadline=None)
@given(identifiers)
def test_every_single_substitution_in_the_barcode_flag_form_is_refused(x: Identifier) -> None:
    if x.kind != "DIN":
        return
    code = x.barcode_din
    slipped = [
        mutant
        for i in range(1, len(code))
        for char in ALPHABET
        if char != code[i]
        for mutant in [code[:i] + char + code[i + 1 :]]
        # Changing the type 3 flag to "00" legitimately switches the check off.
        if not (i >= 14 and mutant.endswith("00"))
        if accepted(mutant)
    ]
    assert slipped == []
