"""Client/server mode: the same ingest and answers against a real `chroma run` server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dossier.engine import Dossier
from dossier.errors import BackendUnavailable, CollectionNotFound
from dossier.testing import wait_for_http
from ingest.pipeline import Ingestor
from tests.conftest import CORPUS, SEED_COLLECTION, make_settings

CHROMA = Path(sys.executable).parent / "chroma"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMA.exists() and not shutil.which("chroma"), reason="no chroma CLI"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = _free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    exe = str(CHROMA) if CHROMA.exists() else "chroma"
    proc = subprocess.Popen(
        [exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_for_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", proc):
            raise RuntimeError("chroma run did not start")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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
    assert not answer.refused and "24 hours" in answer.text
    with pytest.raises(CollectionNotFound):
        other.ask("Why?", "not-there")
    assert not (tmp_path / "other" / "index" / "chroma").exists()


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, store="chroma-http", chroma_port=_free_port())
    with pytest.raises(BackendUnavailable, match="chroma run"):
        Dossier(settings).collections()
