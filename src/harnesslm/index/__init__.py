"""Item embeddings (encoded once, cached) and the FAISS index the students search."""
