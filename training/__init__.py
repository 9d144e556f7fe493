"""Training, evaluation and data ingest for the chest X-ray classifier (needs torch)."""
