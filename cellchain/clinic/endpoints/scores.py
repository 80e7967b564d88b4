"""The efficacy scores of axial spondyloarthritis, computed from their items (pure functions).

Sources (checked before coding):

- BASDAI: six questions on a 0–10 numerical rating scale; the mean of questions 5 and 6 is
  added to the sum of questions 1–4 and the result divided by 5 (ASAS handbook / EULAR
  recommendations, Ann Rheum Dis, "Clinical assessment of axial spondyloarthritis", table 2).
- BASFI: the mean of its ten items, each 0–10.
- ASDAS-CRP = 0.121 × back pain (BASDAI Q2) + 0.058 × duration of morning stiffness
  (BASDAI Q6) + 0.110 × patient global + 0.073 × peripheral pain/swelling (BASDAI Q3)
  + 0.579 × ln(CRP mg/L + 1), each item 0–10; a CRP below 2 mg/L is taken as 2 mg/L
  (Lukas et al., Ann Rheum Dis 2009;68:18–24, "ASDAS C", the published ASDAS-CRP; the
  2 mg/L floor per ASAS, as restated in RMD Open 2025;11:e004844, table 2). The coefficients
  often quoted rounded (0.12, 0.06, 0.11, 0.07, 0.58) are these to two decimals; the full
  published ones are used here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Every questionnaire item (BASDAI, BASFI, patient global) is on a 0–10 scale.
ITEM_MIN, ITEM_MAX = 0.0, 10.0
#: CRP in mg/L and ESR in mm/h: the ranges a laboratory can report.
CRP_MAX_MG_L = 500.0
ESR_MAX_MM_H = 200.0
#: ASAS: a CRP below this (mg/L) is replaced by it in ASDAS-CRP.
CRP_FLOOR_MG_L = 2.0


@dataclass(frozen=True)
class Scores:
    """The three composite scores of one assessment, rounded to two decimals for display."""

    basdai: float
    basfi: float
    asdas_crp: float


def basdai(items: Sequence[float]) -> float:
    """BASDAI from its six items: (Q1 + Q2 + Q3 + Q4 + (Q5 + Q6) / 2) / 5."""
    if len(items) != 6:
        raise ValueError(f"BASDAI has 6 items, not {len(items)}")
    q1, q2, q3, q4, q5, q6 = items
    return (q1 + q2 + q3 + q4 + (q5 + q6) / 2) / 5


def basfi(items: Sequence[float]) -> float:
    """BASFI from its ten items: their mean."""
    if len(items) != 10:
        raise ValueError(f"BASFI has 10 items, not {len(items)}")
    return sum(items) / 10


def asdas_crp(
    *,
    back_pain: float,
    morning_stiffness_duration: float,
    patient_global: float,
    peripheral_pain: float,
    crp_mg_l: float,
) -> float:
    """ASDAS-CRP (see the module's sources); CRP below 2 mg/L counts as 2 mg/L."""
    crp = max(crp_mg_l, CRP_FLOOR_MG_L)
    return (
        0.121 * back_pain
        + 0.058 * morning_stiffness_duration
        + 0.110 * patient_global
        + 0.073 * peripheral_pain
        + 0.579 * math.log(crp + 1)
    )


def scores(
    basdai_items: Sequence[float],
    basfi_items: Sequence[float],
    *,
    patient_global: float,
    crp_mg_l: float,
) -> Scores:
    """The three scores of one assessment: ASDAS takes back pain from BASDAI Q2, peripheral
    pain/swelling from Q3 and the duration of morning stiffness from Q6."""
    return Scores(
        basdai=round(basdai(basdai_items), 2),
        basfi=round(basfi(basfi_items), 2),
        asdas_crp=round(
            asdas_crp(
                back_pain=basdai_items[1],
                morning_stiffness_duration=basdai_items[5],
                patient_global=patient_global,
                peripheral_pain=basdai_items[2],
                crp_mg_l=crp_mg_l,
            ),
            2,
        ),
    )
