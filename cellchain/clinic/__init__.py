"""The clinic: shipments, receipt, thaw, bedside verification, infusions, adverse events,
follow-up."""
