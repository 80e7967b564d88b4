"""API of the dosing package: protocols."""

from __future__ import annotations

from cellchain.documents.api import document_api
from cellchain.dosing.schemas import ProtocolOut
from cellchain.dosing.service import PROTOCOLS

protocols_api = document_api(
    PROTOCOLS,
    ProtocolOut,
    name="protocol",
    noun="protocol",
    description="Trial protocols",
    one_summary="One protocol version with its parameters and signatures (each marked valid or "
    "not).",
)
blueprints = (protocols_api,)
