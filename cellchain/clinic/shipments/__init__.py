"""Shipments to the clinic: dispatch in a dry shipper, hand-offs, receipt and holds, QA's
decision on a held shipment."""
