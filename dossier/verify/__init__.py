"""Is each sentence supported by the passage it cites? Citation markers and support scorers."""
