"""Grounding evals for Dossier: datasets, metrics, the runner and its reports.

Run them with ``dossier eval --suite seed|squad2|rgb``; see ``evals/README.md``.
"""
