"""Traceability: trace back and forward, recalls and lookback, the chain-of-identity report
and the FHIR export. It reads every other package and is read by none."""
