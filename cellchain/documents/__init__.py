"""Versioned, QA-approved controlled documents: trial protocols, product definitions and
release specifications, their life cycle, use cases, API routes and pages, written once."""
