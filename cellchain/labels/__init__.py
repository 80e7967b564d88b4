"""Labels: controlled label templates, the layout they declare, and (to come) their output."""
