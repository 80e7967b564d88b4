"""Trial protocols, patients, enrolment, weights, dose orders and allocation."""
