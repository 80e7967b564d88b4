"""The HTML shell: layout, home, global scan, login pages, error pages, security hooks."""
