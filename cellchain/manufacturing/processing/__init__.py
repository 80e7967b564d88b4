"""Processing: the bench steps (isolation, passages, cell banks, fill, freezing), the lots they
make and their batch record, the materials and equipment they use, and the pages and API of
product definitions (their rules are the parent's ``service``)."""
