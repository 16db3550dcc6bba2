"""The three phases: teacher fine-tuning, student alignment, student refinement."""
