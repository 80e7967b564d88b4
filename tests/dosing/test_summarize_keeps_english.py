"""A refusal summing up several field messages reads in the reader's language and keeps the
English of each for the audit trail (``dosing.patients.summarize``, used across the clinic)."""

from __future__ import annotations

from cellchain.core.i18n import _, english_of, using_language
from cellchain.dosing.patients import summarize


def test_the_summary_reads_translated_and_keeps_its_english() -> None:
    with using_language("zh_Hans"):
        errors = {
            "email": [_("Not an e-mail address, e.g. name@hospital.cn.")],
            "token": [
                _("This confirmation link has expired. Give the address again for a new one.")
            ],
        }
        summary = summarize(errors)
    assert "过期" in summary
    assert english_of(summary) == (
        "Not an e-mail address, e.g. name@hospital.cn. "
        "This confirmation link has expired. Give the address again for a new one."
    )
