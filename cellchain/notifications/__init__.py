"""In-app notifications and their e-mails, raised by the events the work queues count (issue 21)."""
