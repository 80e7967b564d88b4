"""Follow-up visits and adverse events: the clinic's due visits, a patient's schedule,
evaluations done, adverse events and their outcome."""
