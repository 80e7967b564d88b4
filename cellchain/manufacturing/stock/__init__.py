"""Material stock: quantities received, used per step, adjusted and remaining (issue 22)."""
