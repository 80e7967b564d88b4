"""Quality: release specifications, QC results, out-of-spec, QA disposition."""
