"""A PDF read back as text."""

from __future__ import annotations

import io
import re

from pypdf import PdfReader


def pages_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def squeeze(text: str) -> str:
    """Whitespace as one plain space: table cells and non-breaking spaces read alike."""
    return re.sub(r"\s+", " ", text.replace("\u00a0", " "))
