"""Streamlit UI for Dossier; it talks to the API only over HTTP (see ``ui.client``)."""
