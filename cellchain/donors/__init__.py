"""Donors and donations: registration, receipt, test results and eligibility (DOMAIN.md §3)."""
