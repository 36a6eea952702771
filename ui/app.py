"""Streamlit entry point: ``streamlit run ui/app.py`` (``make run`` does it for you).

The UI reaches Dossier only over HTTP at ``DOSSIER_API_URL``; it never imports the service.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run ui/app.py` puts ui/ (not the repo root) on sys.path; add the root so that
# `import ui` works from a plain checkout, without an install step.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dossier.settings import Settings  # noqa: E402
from ui import render, views  # noqa: E402
from ui.client import ApiError, DossierClient  # noqa: E402

PAGES = ("Chat", "Corpus", "Evals", "Feedback")


def pick_collection(client: DossierClient, default: str) -> str | None:
    """The sidebar picker; None when the API cannot list collections (the error is shown)."""
    try:
        names = [c.name for c in client.collections()]
    except ApiError as exc:
        st.error(str(exc), icon="🚫")
        return None
    if not names:
        where = " or add files on the Corpus page" if client.may_write else ""
        st.warning(f"The API has no collections yet. Ingest one with `dossier ingest`{where}.")
        return None
    pending = st.session_state.pop("pending-collection", None)
    if pending in names:
        # The collection just written to (the Corpus page's upload); set before the picker
        # is drawn, since Streamlit refuses to change a widget's value after that.
        st.session_state["collection"] = pending
    wanted = st.query_params.get("collection")
    if wanted and wanted not in names:
        st.warning(f"Unknown collection {wanted!r}. Known collections: {', '.join(names)}.")
    first = wanted if wanted in names else default
    index = names.index(first) if first in names else 0
    return st.sidebar.selectbox("Collection", names, index=index, key="collection")


def main() -> None:
    st.set_page_config(page_title="Dossier", page_icon="📰")
    st.html(render.CSS)
    settings = Settings()
    key = settings.ui_api_key.get_secret_value() if settings.ui_api_key else None
    client = DossierClient(settings.api_url, settings.ui_timeout_s, api_key=key)
    try:
        st.sidebar.title("Dossier")
        page = st.sidebar.radio("Page", PAGES, key="page", on_change=views.leave_source)
        st.sidebar.caption(f"API: {settings.api_url}")
        if page == "Evals" and "source" not in st.session_state:
            # Eval reports are files on disk; this page must work with the API down.
            views.evals(settings.evals_reports_dir)
            return
        if "source" not in st.session_state:
            src = views.source_from_query()
            if src:
                st.session_state["source"] = src
        if "source" in st.session_state:
            views.source(client, st.session_state["source"])
            return
        collection = pick_collection(client, settings.default_collection)
        if page == "Chat":
            views.chat(client, collection)
        elif page == "Corpus":
            views.corpus(client, collection)
        else:
            views.feedback_review(client)
    finally:
        client.close()


main()
