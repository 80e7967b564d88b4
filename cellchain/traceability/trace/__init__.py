"""Trace forward and back: from a donation, lot, unit, material lot or piece of equipment to
every unit, dose, infusion and patient, and from a unit, dose or infusion back to the donor."""
