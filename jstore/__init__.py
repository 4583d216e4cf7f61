"""JStore: a batch-first feature store."""
