"""Reading texts and records from files (txt, JSONL[.gz], Parquet, stdin) and writing embeddings."""
