"""Deviations: opened against a lot or a donation, closed by QA with a signature; QA's
signed authorisation of a limit excursion."""
