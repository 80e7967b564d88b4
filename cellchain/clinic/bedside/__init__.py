"""The bedside: the doses' units, thaw, the bedside check and its two-person sign-off, the
infusion, and the clinic record of a dose."""
