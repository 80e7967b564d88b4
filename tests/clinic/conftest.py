"""The clinic's fixtures: the dosing package's clinic (protocol in force, clinician,
investigator) and released lot, re-used here."""

from __future__ import annotations

from tests.dosing.conftest import clinic, released  # noqa: F401  (fixtures)
from tests.manufacturing.conftest import bench  # noqa: F401  (fixture)
from tests.quality.conftest import desk, spec  # noqa: F401  (fixtures)
