"""Work queues per role on the home page and ``GET /api/v1/worklist`` (issue 21)."""
