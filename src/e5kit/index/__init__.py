"""Embedding stores and search: exact blocked top-k, FAISS, BM25, hybrid fusion."""
