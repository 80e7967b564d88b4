"""Units, lineage, custody and scan events, trace queries: the chain-of-identity core."""
