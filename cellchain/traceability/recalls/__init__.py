"""Recalls and lookback: open a recall (blocking what it names), notify the exposed patients,
close it; a late donor result re-opens the determination and opens a lookback recall."""
