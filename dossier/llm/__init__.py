"""The one OpenAI-compatible client every stage shares (retries, timeouts, failures)."""
