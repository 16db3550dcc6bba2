"""Online search: a query encoder plus the teacher's item index."""
