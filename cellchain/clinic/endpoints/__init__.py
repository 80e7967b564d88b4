"""Efficacy endpoints at the evaluation visits (baseline, months 6 and 12): BASDAI, BASFI,
ASDAS-CRP computed from their items, CRP and ESR (issue 19)."""
