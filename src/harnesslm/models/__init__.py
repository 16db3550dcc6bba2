"""Model resolution (bundled, local, hub), fingerprints, and the student architectures."""
