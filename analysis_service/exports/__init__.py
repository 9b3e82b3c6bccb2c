"""One row per image of a finished job, for other tools: Parquet, CSV, JSONL."""
