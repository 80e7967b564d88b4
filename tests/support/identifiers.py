"""Hypothesis strategies for well-formed identifiers: DINs, COIs and unit codes of any
facility, year and sequence."""

from __future__ import annotations

from hypothesis import strategies as st

from cellchain.core.identifiers import UNIT_KIND_LETTERS, make_coi, make_din, make_unit_code

FIRST = "ABCDEFGHIJKLMNPQRSTUVWXYZ123456789"
MIDDLE = "0123456789ABCDEFGHIJKLMNPQRSTUVWXYZ"
DIGITS = "0123456789"

facility_codes = st.builds(
    lambda a, b, c, d, e: a + b + c + d + e,
    st.sampled_from(FIRST),
    st.sampled_from(MIDDLE),
    st.sampled_from(MIDDLE),
    st.sampled_from(DIGITS),
    st.sampled_from(DIGITS),
)
years = st.integers(min_value=0, max_value=99)
sequences = st.integers(min_value=1, max_value=999_999)
makers = st.sampled_from([make_din, make_coi])
unit_codes = st.builds(
    lambda din, letter, n: make_unit_code(din.canonical, letter, n),
    st.builds(make_din, facility_codes, years, sequences),
    st.sampled_from(sorted(UNIT_KIND_LETTERS)),
    st.integers(min_value=1, max_value=9999),
)
identifiers = st.one_of(
    st.builds(lambda make, f, y, s: make(f, y, s), makers, facility_codes, years, sequences),
    unit_codes,
)
