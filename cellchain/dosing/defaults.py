"""The NCT01420432 protocol defaults (DOMAIN.md §7; ../shared/trial-NCT01420432.txt), and
the demo's second protocol (PL-MSC-OL-01, issue 22).

Data, not code: ``cellchain init`` and ``demo`` load NCT01420432 as version 1 of the
default protocol, and the demo loads PL-MSC-OL-01 beside it; a site changes either only
through a new version signed by QA. Nothing in the code is keyed to either: a patient's
rules are those of the protocol version they were enrolled under.
"""

from __future__ import annotations

from typing import Any

from cellchain.core.i18n import N_

NCT01420432_CODE = "NCT01420432"
NCT01420432_TITLE = (
    "Safety and Efficacy Study of Umbilical Cord/Placenta-Derived Mesenchymal Stem Cells "
    "to Treat Ankylosing Spondylitis"
)

NCT01420432_PARAMETERS: dict[str, Any] = {
    #: the product definitions (codes) a dose for this protocol's patients may come from;
    #: a bag of any other product is refused at allocation, dispatch and the bedside
    "products": ["UC-MSC"],
    "arms": [
        {
            "code": "MSC",
            "name": N_("MSC + DMARDs"),
            "type": N_("experimental"),
            "receives_cells": True,
        },
        {
            "code": "CONTROL",
            "name": N_("DMARDs only"),
            "type": N_("no intervention"),
            "receives_cells": False,
        },
    ],
    "randomization": {"ratio": "1:1", "planned_enrolment": 10},
    "age_years": {"min": 18, "max": 60},
    "inclusion": [
        {"code": "definite_as", "text": N_("Definite AS by the modified New York criteria")},
        {
            "code": "ecog",
            "text": N_("ECOG performance status 0–2"),
            "measure": {
                "unit": N_("ECOG score"),
                "operator": "<=",
                "limit": 2,
                "min": 0,
                "max": 5,
                "integer": True,
            },
        },
        {
            "code": "ejection_fraction",
            "text": N_("Ejection fraction > 45 %"),
            "measure": {"unit": "%", "operator": ">", "limit": 45},
        },
        {
            "code": "creatinine",
            "text": N_("Creatinine < 176 µmol/L"),
            "measure": {"unit": "µmol/L", "operator": "<", "limit": 176},
        },
        {"code": "no_severe_infection", "text": N_("No severe infection")},
        {"code": "written_consent", "text": N_("Written informed consent signed")},
    ],
    "exclusion": [
        {"code": "serious_concomitant_disease", "text": N_("Other serious concomitant disease")},
        {
            "code": "psychiatric",
            "text": N_("Psychiatric condition that would limit informed consent"),
        },
        {"code": "infection", "text": N_("HIV, hepatitis B or C, tuberculosis or other infection")},
        {"code": "pregnancy", "text": N_("Positive pregnancy test or lactation")},
        {
            "code": "other_trial",
            "text": N_("Enrolled in another clinical trial within the last 4 weeks"),
        },
        {"code": "msc_contraindication", "text": N_("Contraindication to MSC")},
    ],
    "dose_viable_cells_per_kg": 1.0e6,
    #: Day 0 is the scheduled day of the first infusion; every later visit counts from the
    #: day the first infusion actually started (the trial: "after six and twelve months from
    #: the first transplantation"). Day 0 may be rescheduled within ``reschedule_within_days``
    #: of the day planned at enrolment; month 3's ± 14 days are the protocol document's. The
    #: trial text gives no window for months 6 and 12 nor a limit for moving day 0: those are
    #: this site's protocol parameters. A visit moved outside its window is a protocol
    #: deviation the investigator signs (``clinic/follow_up/scheduling.py``).
    "infusions": [
        {
            "code": "D0",
            "name": N_("Day 0"),
            "day": 0,
            "window_days": 0,
            "reschedule_within_days": 14,
        },
        {"code": "M3", "name": N_("Month 3"), "day": 91, "window_days": 14},
    ],
    "follow_up": [
        {"code": "M6", "name": N_("Month 6 evaluation"), "day": 182, "window_days": 14},
        {"code": "M12", "name": N_("Month 12 evaluation"), "day": 365, "window_days": 28},
    ],
    #: before each infusion after the first, a clinician re-confirms the items that can change
    #: since enrolment (``dosing/rechecks``); the re-check holds for ``valid_days`` before
    #: the dose is ordered and at the bedside. Day 0 relies on the enrolment checklist.
    "pre_infusion_recheck": {
        "visits": ["M3"],
        "valid_days": 7,
        "items": [
            {
                "code": "pregnancy_test",
                "text": N_("Pregnancy test negative (or not applicable, with the reason)"),
                "options": [
                    {"value": "negative", "label": N_("negative"), "passes": True},
                    {"value": "positive", "label": N_("positive"), "passes": False},
                    {
                        "value": "not_applicable",
                        "label": N_("not applicable (say why, e.g. male)"),
                        "passes": True,
                        "needs_reason": True,
                    },
                ],
            },
            {"code": "no_active_infection", "text": N_("No active infection")},
            {
                "code": "no_new_trial",
                "text": N_("Not enrolled in another clinical trial since enrolment"),
            },
            {
                "code": "creatinine",
                "text": N_("Creatinine < 176 µmol/L (re-measured)"),
                "measure": {"unit": "µmol/L", "operator": "<", "limit": 176, "min": 0},
            },
            {
                "code": "ejection_fraction",
                "text": N_("Ejection fraction > 45 % (re-measured or re-confirmed)"),
                "measure": {"unit": "%", "operator": ">", "limit": 45, "min": 0, "max": 100},
            },
            {
                "code": "ecog",
                "text": N_("ECOG performance status 0–2"),
                "measure": {
                    "unit": N_("ECOG score"),
                    "operator": "<=",
                    "limit": 2,
                    "min": 0,
                    "max": 5,
                    "integer": True,
                },
            },
        ],
    },
    "dose_tolerance_percent": 10,
    "weight_recency_days": 7,
    "weight_change_flag_percent": 10,
    #: an adult of 18–60 below 30 kg or above 250 kg is a typing error (grams, pounds, the
    #: decimal point); a weight outside is refused
    "plausible_weight_kg": {"min": 30, "max": 250},
    #: an infusion's end is flagged for a second clinician when the rate its volume and
    #: duration imply is more than this far above the rate recorded
    "infusion_rate_tolerance_percent": 25,
    "thaw_to_infusion_minutes": 60,
    "dmso_ceiling_g_per_kg": 1.0,
    "dmso_density_g_per_ml": 1.10,
    "endotoxin_ceiling_eu_per_kg_per_h": 5.0,
    "syringe_graduation_ml": 0.1,
}


#: The demo's second protocol (issue 22): single-dose, open-label, one arm, no control, no
#: randomization, at 2.0 × 10⁶ viable cells/kg of the placenta-derived product. Its own
#: code, windows, age and dose limits: a demo of several protocols at once, not a real trial.
PL_MSC_OL_01_CODE = "PL-MSC-OL-01"
PL_MSC_OL_01_TITLE = (
    "Open-label, single-dose study of placenta-derived mesenchymal stromal cells (demo)"
)

PL_MSC_OL_01_PARAMETERS: dict[str, Any] = {
    "products": ["PL-MSC"],
    #: one arm: every patient enrolled receives cells (no randomization, open label)
    "arms": [
        {
            "code": "OPEN",
            "name": N_("Placenta MSC, single dose"),
            "type": N_("experimental"),
            "receives_cells": True,
        },
    ],
    "age_years": {"min": 18, "max": 70},
    "inclusion": [
        {
            "code": "ecog",
            "text": N_("ECOG performance status 0–2"),
            "measure": {
                "unit": N_("ECOG score"),
                "operator": "<=",
                "limit": 2,
                "min": 0,
                "max": 5,
                "integer": True,
            },
        },
        {
            "code": "creatinine",
            "text": N_("Creatinine < 150 µmol/L"),
            "measure": {"unit": "µmol/L", "operator": "<", "limit": 150},
        },
        {"code": "written_consent", "text": N_("Written informed consent signed")},
    ],
    "exclusion": [
        {"code": "infection", "text": N_("HIV, hepatitis B or C, tuberculosis or other infection")},
        {"code": "pregnancy", "text": N_("Positive pregnancy test or lactation")},
        {"code": "msc_contraindication", "text": N_("Contraindication to MSC")},
    ],
    "dose_viable_cells_per_kg": 2.0e6,
    #: a single infusion at day 0, which may move by up to 7 days from the day planned
    "infusions": [
        {
            "code": "D0",
            "name": N_("Day 0"),
            "day": 0,
            "window_days": 0,
            "reschedule_within_days": 7,
        },
    ],
    "follow_up": [
        {"code": "D28", "name": N_("Day 28 evaluation"), "day": 28, "window_days": 3},
        {"code": "M6", "name": N_("Month 6 evaluation"), "day": 182, "window_days": 21},
    ],
    "dose_tolerance_percent": 10,
    "weight_recency_days": 3,
    "weight_change_flag_percent": 10,
    "plausible_weight_kg": {"min": 35, "max": 200},
    "infusion_rate_tolerance_percent": 25,
    "thaw_to_infusion_minutes": 45,
    "dmso_ceiling_g_per_kg": 1.0,
    "dmso_density_g_per_ml": 1.10,
    "endotoxin_ceiling_eu_per_kg_per_h": 5.0,
    "syringe_graduation_ml": 0.1,
}
