"""QR codes exactly as the ``qrcode`` library makes them, with its mask chosen faster.

``qrcode`` draws the whole symbol nine times to make one: once per mask pattern (eight) to
score it with the ISO/IEC 18004 penalty rules, in pure Python over lists of lists, and once
more with the winner. That was three quarters of the time of a label (5 ms of a QR code's
6.5 ms; issue 20). Here ``qrcode`` still encodes the data, places it and draws the final
symbol; only the scoring is done differently: the symbol is drawn once with mask 0, the
other seven are that symbol with the data modules flipped where the masks differ (an XOR of
each row, as a Python integer), and each is scored on its rows and columns as strings of 0
and 1 with regular expressions, with the same rules, the same quirks (format bits light
while scoring, as ``qrcode`` scores them) and the same tie-break (the lowest pattern). The
result is the symbol ``qrcode`` would make, module for module:
``tests/labels/test_qr.py`` compares them over every version a label can reach.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Sequence

import qrcode
from qrcode import util
from qrcode.constants import ERROR_CORRECT_M

#: a run of five or more modules of one colour (rule 1: 3 points, and 1 per module beyond 5)
_RUN = re.compile(r"0{5,}|1{5,}")
#: 1:1:3:1:1 finder-like pattern with four light modules on one side (rule 3: 40 points);
#: neither overlaps itself, so ``str.count`` finds every one
_FINDER_LIKE = ("10111010000", "00001011101")
#: a row of modules (bytes of 0 and 1) as the digits of a binary number
_DIGITS = bytes.maketrans(b"\x00\x01", b"01")


def qr_matrix(payload: str) -> list[list[bool]]:
    """The modules (True is dark, no quiet zone) of ``payload``'s QR code: error correction M,
    the smallest version that holds it, the mask pattern with the lowest penalty."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0, box_size=1)
    code.add_data(payload)
    code.best_fit()
    code.makeImpl(True, 0)  # as qrcode scores mask 0: format bits light
    version, size = code.version, code.modules_count
    rows = [_bits(row) for row in code.modules]
    pattern = _best_mask(rows, version)
    # the symbol masked with that pattern, then its format (and version) information drawn by
    # qrcode as its makeImpl(False, pattern) draws them
    row_flips = _mask_flips(version)[pattern][0]
    code.modules = [
        [digit == "1" for digit in format(row ^ flip, f"0{size}b")]
        for row, flip in zip(rows, row_flips, strict=True)
    ]
    code.setup_type_info(False, pattern)
    if version >= 7:
        code.setup_type_number(False)
    return [[bool(cell) for cell in row] for row in code.modules]


def _best_mask(rows0: list[int], version: int) -> int:
    """The mask pattern ``qrcode.QRCode.best_mask_pattern`` chooses, from the rows of the
    symbol drawn for scoring with mask 0."""
    size = version * 4 + 17
    columns0 = _transpose(rows0, size)
    flips = _mask_flips(version)
    best, best_points = 0, 0
    for pattern in range(8):
        row_flips, column_flips = flips[pattern]
        rows = [row ^ flip for row, flip in zip(rows0, row_flips, strict=True)]
        columns = [column ^ flip for column, flip in zip(columns0, column_flips, strict=True)]
        points = _penalty(rows, columns, size)
        if pattern == 0 or points < best_points:
            best, best_points = pattern, points
    return best


def _bits(cells: Sequence[bool | None]) -> int:
    """A row or column of modules as an integer, its first module the highest bit."""
    return int(bytes(bool(cell) for cell in cells).translate(_DIGITS), 2)


def _transpose(rows: Sequence[int], size: int) -> list[int]:
    """The columns of a symbol given as rows (both as integers, first module highest)."""
    texts = [format(row, f"0{size}b") for row in rows]
    return [int("".join(column), 2) for column in zip(*texts, strict=True)]


def _penalty(rows: list[int], columns: list[int], size: int) -> int:
    """``qrcode.util.lost_point`` of the symbol with these rows and columns."""
    text = ",".join(format(line, f"0{size}b") for line in (*rows, *columns))
    points = sum(len(run) - 2 for run in _RUN.findall(text))
    points += 40 * sum(text.count(pattern) for pattern in _FINDER_LIKE)
    pairs = (1 << (size - 1)) - 1
    blocks = 0
    for upper, lower in itertools.pairwise(rows):
        same = ~(upper ^ lower)
        blocks += (same & (same >> 1) & ~(upper ^ (upper >> 1)) & pairs).bit_count()
    points += 3 * blocks
    dark = sum(row.bit_count() for row in rows)
    percent = float(dark) / (size**2)
    points += int(abs(percent * 100 - 50) / 5) * 10
    return points


@functools.cache
def _mask_flips(version: int) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """For each mask pattern, the bits to flip in each row and column of the symbol masked
    with pattern 0 to have it masked with that pattern: its data modules where the two masks
    differ."""
    region = _data_region(version)
    size = len(region)
    first = util.mask_func(0)
    flips = []
    for pattern in range(8):
        mask = util.mask_func(pattern)
        grid = [
            [region[r][c] and bool(first(r, c)) != bool(mask(r, c)) for c in range(size)]
            for r in range(size)
        ]
        rows = tuple(_bits(row) for row in grid)
        flips.append((rows, tuple(_transpose(rows, size))))
    return tuple(flips)


@functools.cache
def _data_region(version: int) -> tuple[tuple[bool, ...], ...]:
    """Which modules of a symbol of ``version`` carry data (and so are masked): those that
    ``qrcode``'s ``makeImpl`` leaves empty for ``map_data`` after drawing the finder,
    alignment and timing patterns, the format information and the version information."""
    code = qrcode.QRCode(version=version, error_correction=ERROR_CORRECT_M, border=0)
    size = version * 4 + 17
    code.modules_count = size
    code.modules = [[None] * size for _ in range(size)]
    code.setup_position_probe_pattern(0, 0)
    code.setup_position_probe_pattern(size - 7, 0)
    code.setup_position_probe_pattern(0, size - 7)
    code.setup_position_adjust_pattern()
    code.setup_timing_pattern()
    code.setup_type_info(True, 0)
    if version >= 7:
        code.setup_type_number(True)
    return tuple(tuple(cell is None for cell in row) for row in code.modules)
