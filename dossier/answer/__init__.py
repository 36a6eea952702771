"""Passages to a cited answer or a refusal: candidates, the learned model, the answerers."""
