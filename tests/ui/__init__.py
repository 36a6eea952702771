"""Tests of the Streamlit UI, its HTTP client and the feedback endpoint."""
