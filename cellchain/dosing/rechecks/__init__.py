"""The re-check before each infusion after the first (issue 19): service, API and pages."""
