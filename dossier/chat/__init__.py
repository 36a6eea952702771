"""Conversations: follow-ups condensed to standalone questions, and stored conversations."""
