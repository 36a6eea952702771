"""Ingestion: files → cleaned documents → sentence-aware chunks → embeddings → the store."""
