"""Shared kernel: model types, identifiers, audit trail, e-signatures, users and roles."""
