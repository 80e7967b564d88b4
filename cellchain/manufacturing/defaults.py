"""The default product definition: UC-MSC (DOMAIN.md §3–4).

Numbers here are defaults a site reviews; they take effect only when QA signs the version.
"""

from __future__ import annotations

from typing import Any

UC_MSC_CODE = "UC-MSC"
UC_MSC_TITLE = "Umbilical cord / placenta-derived mesenchymal stromal cells"

#: Infectious-disease tests on the birth mother's specimen (21 CFR 1271.85; DOMAIN.md §3):
#: the default version of the donor test panel UC-MSC, a controlled document of its own since
#: issue 22 (``cellchain/donors/panels.py``). HTLV-I/II and CMV are required only for
#: leukocyte-rich cells, which MSCs are not; a site that wants them adds them to the panel in
#: a new version.
DEFAULT_DONOR_TEST_PANEL: list[dict[str, str]] = [
    {"code": "HIV1-AB", "name": "Anti-HIV-1 antibody"},
    {"code": "HIV1-NAT", "name": "HIV-1 nucleic acid test"},
    {"code": "HIV2-AB", "name": "Anti-HIV-2 antibody"},
    {"code": "HBSAG", "name": "Hepatitis B surface antigen (HBsAg)"},
    {"code": "HBC-AB", "name": "Anti-HBc (total)"},
    {"code": "HCV-AB", "name": "Anti-HCV antibody"},
    {"code": "HCV-NAT", "name": "HCV nucleic acid test"},
    {"code": "SYPHILIS", "name": "Syphilis (Treponema pallidum)"},
]

UC_MSC_PARAMETERS: dict[str, Any] = {
    #: the donor test panel (a controlled document, ``donors/panels.py``) its donations are
    #: tested against: the version in force when a donation is registered applies to it
    "donor_test_panel_code": UC_MSC_CODE,
    #: the mother's specimen is taken at recovery or up to this many days before or after
    "specimen_window_days": 7,
    #: birth (delivery) to the start of processing, at most (hours)
    "max_hours_birth_to_processing": 72,
    "max_passage": 5,
    "max_cumulative_population_doublings": 40,
    "dmso_percent": {"min": 5, "max": 10},
    "storage_max_temperature_c": -135,
    #: a lot expires this many days after its fill (frozen in LN2 vapour phase); a site sets
    #: it from its own stability data
    "shelf_life_days": 365,
    #: one cryobag of the lot: volume filled and target TOTAL cells per mL (what the fill form
    #: starts from; the dose applies the release viability to the count once)
    "fill_volume_ml": 20,
    "target_concentration_cells_per_ml": 5.0e6,
    #: culture vessel formats and their growth area (cm²)
    "vessel_formats": {"T75": 75, "T175": 175, "CS1": 636, "CS2": 1272, "CS5": 3180},
    #: a harvest above this many cells per cm² of the vessels harvested is not plausible
    #: (confluent MSC reach about 2–5 × 10^4 cells/cm²)
    "max_harvest_cells_per_cm2": 1.0e5,
    #: a cryobag thaws in no less than this (minutes, 37 °C bath); a completion scanned sooner
    #: is refused
    "min_thaw_minutes": 2,
    #: MSC double no faster than this (hours; typically 20–48 h); a harvest whose counts and
    #: days in culture imply a faster doubling is refused as a miscount or a wrong date
    "min_doubling_time_hours": 12,
    #: a culture vessel is due for its harvest (passage, bank or fill) this many days after it
    #: was seeded: "primary" for P0 vessels seeded from tissue (explant outgrowth takes about
    #: 10-14 days), "subculture" for vessels seeded at a passage or from a bank vial (MSC
    #: seeded at a few thousand cells per cm² near confluence in about 3-5 days); the
    #: technician's work queue counts the vessels due (``manufacturing.culture_schedule``)
    "harvest_due_days": {"primary": 10, "subculture": 4},
}

#: The demo's second product (issue 22): placenta-derived MSC with its own code, source,
#: donor test panel (the birth mother's tests plus anti-HTLV-I/II, a document of its own,
#: ``donors/panels``) and limits; the protocol PL-MSC-OL-01 names it. Defaults a site
#: reviews, in force only once QA signs them.
PL_MSC_CODE = "PL-MSC"
PL_MSC_TITLE = "Placenta-derived mesenchymal stromal cells (demo)"
PL_MSC_DONOR_TEST_PANEL: list[dict[str, str]] = [
    *DEFAULT_DONOR_TEST_PANEL,
    {"code": "HTLV-AB", "name": "Anti-HTLV-I/II antibody"},
]
PL_MSC_PARAMETERS: dict[str, Any] = {
    **UC_MSC_PARAMETERS,
    #: the tissue the product is made from (the donation registers it)
    "source": "placenta",
    "donor_test_panel_code": PL_MSC_CODE,
    "max_hours_birth_to_processing": 48,
    "max_passage": 4,
    "max_cumulative_population_doublings": 30,
    "shelf_life_days": 180,
}
