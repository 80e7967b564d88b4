"""The scan box's rule: what a scanned or typed code is, and which record it names (issue 21)."""
