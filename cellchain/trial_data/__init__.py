"""The trial's data for the sponsor and the DSMB (issue 19): a pseudonymised export as CDISC ODM
1.3.2 XML or a CSV bundle, generated as a job with its progress, and the DSMB summary by arm."""
