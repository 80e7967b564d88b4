"""Equipment: registration, calibration and maintenance with due dates, certificates kept in
the database, and the refusal of equipment past its due date at the time of use (issue 22)."""
