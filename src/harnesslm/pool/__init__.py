"""The alignment pool: texts that teach the student the teacher's map from text to embedding, from several
sources (``sources``: merging, caching; ``pseudo_queries``; ``synthetic_queries``). A run's pool is assembled by
``harnesslm.pipeline.alignment_pool``."""
