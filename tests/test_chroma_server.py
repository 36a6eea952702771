"""Client/server mode: the same ingest and answers against a real `chroma run` server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dossier.engine import Dossier
from dossier.errors import BackendUnavailable, CollectionNotFound
from dossier.testing import free_port
from ingest.pipeline import Ingestor
from tests.conftest import CHROMA, CORPUS, SEED_COLLECTION, make_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMA.exists() and not shutil.which("chroma"), reason="no chroma CLI"),
]


def test_ingest_and_ask_through_a_chroma_server(tmp_path: Path, chroma_port: int) -> None:
    settings = make_settings(tmp_path, store="chroma-http", chroma_port=chroma_port)
    engine = Dossier(settings)
    ingestor = Ingestor(settings, engine.store, engine.embedder)
    first = ingestor.ingest(CORPUS / SEED_COLLECTION, SEED_COLLECTION)
    assert first.added == 1 and first.chunks_embedded >= 3
    assert ingestor.ingest(CORPUS / SEED_COLLECTION, SEED_COLLECTION).chunks_embedded == 0

    # A second process (here: a second engine) sees the same index through the server.
    other = Dossier(make_settings(tmp_path / "other", store="chroma-http", chroma_port=chroma_port))
    answer = other.ask("Why did Albania expel Iranian diplomats?")
    assert not answer.refused and "diplomat" in answer.text
    with pytest.raises(CollectionNotFound):
        other.ask("Why?", "not-there")
    assert not (tmp_path / "other" / "index" / "chroma").exists()


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, store="chroma-http", chroma_port=free_port())
    with pytest.raises(BackendUnavailable, match="chroma run"):
        Dossier(settings).collections()
