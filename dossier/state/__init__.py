"""State on disk: SQLite files with versioned schemas (keys, feedback, conversations)."""
