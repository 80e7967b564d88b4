"""Where the top-level resource folders are (templates, migrations, labels, translations).

A leaf module: the app factory, the wiring and the labels package all need these folders,
and importing them from here, not from the ``cellchain`` package (whose ``create_app``
imports the wiring and so every blueprint), keeps the import graph free of cycles.
"""

from __future__ import annotations

from pathlib import Path


def resource_path(name: str) -> Path:
    """A top-level resource folder (templates, migrations, labels).

    In a checkout they stand beside the package (DESIGN.md layout); a wheel carries them
    inside it under ``_resources``.
    """
    packaged = Path(__file__).parent / "_resources" / name
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / name
