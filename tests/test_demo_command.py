"""The README's first command, `cellchain demo`, in a fresh interpreter as a newcomer runs it:
its modules are imported before any app exists, so a module that configures the ORM's
mappers at import (a loader option built at module level) fails there while every in-process
test, whose app imported all models first, passes. It did: 'Donation' not found, from
`clinic/bedside/doses.py`, whichever of 16 modules came first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import FAST_HASH


def test_cellchain_demo_builds_its_site_in_a_fresh_interpreter(tmp_path: Path) -> None:
    database = tmp_path / "demo.sqlite"
    finished = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cellchain.cli import main; main()",
            "demo",
            "--no-serve",
            "--database",
            str(database),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        # the demo users' passwords hashed fast, as every other test does (scrypt for its
        # eight users was a third of the command's CPU time; which hash is made is no matter
        # to the imports this test is about)
        env={**os.environ, "CELLCHAIN_PASSWORD_HASH_METHOD": FAST_HASH},
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "Demo users (username / password / role):" in finished.stdout
    assert database.stat().st_size > 0


def test_the_services_import_before_any_app() -> None:
    """The modules that failed alone, each imported first in a fresh interpreter."""
    for module in (
        "cellchain.demo",
        "cellchain.clinic.bedside.doses",
        "cellchain.clinic.shipments.shipments",
        "cellchain.traceability.fhir.fhir",
    ):
        finished = subprocess.run(
            [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120
        )
        assert finished.returncode == 0, (module, finished.stderr[-2000:])
