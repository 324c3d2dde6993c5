"""Checkpoint I/O, the E5 specification (prompts, pooling, normalization, length) and the encoder."""
