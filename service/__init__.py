"""The HTTP API: FastAPI at the edge of the Dossier engine."""
