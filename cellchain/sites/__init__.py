"""Sites as records (issue 22): the manufacturing facility, the clinical sites, who belongs
to which, and what a clinic user or a monitor may see of them (docs/sites.md)."""
