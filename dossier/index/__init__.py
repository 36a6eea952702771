"""Passages in, passages out: the store interface and backends, embeddings, BM25, retrieval."""
