"""The chain-of-identity report of a patient: as JSON, as a printable page and as a PDF."""
