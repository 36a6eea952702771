"""Shared fixtures: real Chroma on a temp dir, the real embedder, the real seed corpus."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dossier.engine import Dossier
from dossier.settings import Settings
from ingest.pipeline import Ingestor

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
SEED_COLLECTION = "albania-iran"
SHARED = ROOT.parent / "shared"
BBC = SHARED / "benchmarks" / "news-bbc" / "bbc"
CHROMA = Path(sys.executable).parent / "chroma"


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, data_dir=tmp / "index", corpus_dir=CORPUS, **overrides)  # type: ignore[call-arg]


def wait_for_http(url: str, proc: subprocess.Popen[Any], timeout: float = 60) -> bool:
    """Poll ``url`` until it answers 2xx; False once ``proc`` has exited or time is up."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).is_success:
                return True
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real `chroma run` server on a temp dir and a free loopback port."""
    port = free_port()
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


@pytest.fixture(scope="session")
def seed_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dossier]:
    """An engine over the ingested seed collection; shared, so tests must not write to it."""
    tmp = tmp_path_factory.mktemp("seed")
    settings = make_settings(tmp)
    engine = Dossier(settings)
    Ingestor(settings, engine.store, engine.embedder).ingest(
        CORPUS / SEED_COLLECTION, SEED_COLLECTION
    )
    yield engine


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """A writable copy of the seed collection folder."""
    dest = tmp_path / "articles"
    shutil.copytree(CORPUS / SEED_COLLECTION, dest)
    return dest


class LiveServer:
    """uvicorn serving an app on a free loopback port, in a thread."""

    def __init__(self, app: object) -> None:
        import socket
        import threading

        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        import time

        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def api_url(seed_engine: Dossier) -> Iterator[str]:
    from service.app import create_app

    with LiveServer(create_app(seed_engine.settings, seed_engine)) as server:
        yield server.url
