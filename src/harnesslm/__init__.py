"""harness-lm."""
