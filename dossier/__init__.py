"""Dossier: cited question answering over a curated corpus.

The core package holds the domain types, the interfaces every backend
implements, the settings, and the exception tree. ``ingest``, ``service``,
``ui`` and ``evals`` build on it; frameworks (Chroma, FastAPI, Streamlit) stay
behind the small interfaces defined here.
"""

__version__ = "0.1.0"
