"""LN2 storage: tanks, the slot each bag or vial sits in, and tank readings (an excursion
opens a deviation on every lot stored in the tank)."""
