"""Alignment pool sources: extra texts that teach the student the teacher's map from text to embedding."""
