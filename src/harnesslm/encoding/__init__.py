"""Encoding texts with a model: a cache keyed by model and texts (``cache``), and sharded, resumable encoding
on local processes or Ray actors (``sharded``) for catalogs too large for one process."""
