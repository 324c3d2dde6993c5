"""Turning many texts into embeddings fast: token-budget batching, precision, streaming."""
