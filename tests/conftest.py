"""Shared fixtures: real Chroma on a temp dir, the real embedder, the real seed corpus.

Server helpers (LiveServer, free_port, wait_for_http) live in ``dossier.testing``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dossier import testing
from dossier.engine import Dossier
from dossier.index.lexical import LexicalIndex
from dossier.models import Answer
from dossier.settings import Settings, get_settings
from dossier.testing import LiveServer, free_port, wait_for_http
from ingest.pipeline import Ingestor
from tests.fake_llm import FakeState, Step, create_fake_app
from tests.postgres import PostgresServer, start_postgres

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
SEED_COLLECTION = "albania-iran"
SHARED = ROOT.parent / "shared"
BBC = SHARED / "benchmarks" / "news-bbc" / "bbc"
CHROMA = Path(sys.executable).parent / "chroma"


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    return testing.make_settings(tmp, CORPUS, **overrides)


# The state backends (dossier/state/) every store's contract runs over.
STATE_BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (tests/postgres.py); each test gets its own
    database. Skips without PostgreSQL, fails under CI."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


def _state_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None  # the SQLite files in the data directory, as without DOSSIER_STATE_URL
        return
    from dossier.state.postgres import close_pools

    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.new_database()
    yield url
    close_pools(url)


@pytest.fixture(params=STATE_BACKENDS)
def state_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """DOSSIER_STATE_URL for a test, per backend: None (SQLite) or a fresh PostgreSQL database."""
    yield from _state_url(request)


@pytest.fixture(scope="module", params=STATE_BACKENDS)
def module_state_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """As ``state_url``, one per module (for module-scoped servers)."""
    yield from _state_url(request)


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


@pytest.fixture(scope="session")
def api_url(seed_engine: Dossier) -> Iterator[str]:
    from service.app import create_app

    with LiveServer(create_app(seed_engine.settings, seed_engine)) as server:
        yield server.url


# Questions over the seed article, for tests that compare two ways of computing the same
# thing (features, saved vectors and spans) rather than answer quality.
SEED_QUESTIONS = (
    "Why did Albania expel Iranian diplomats?",
    "When did the cyberattack on Albania happen?",
    "Who is Edi Rama?",
    "How many diplomats were expelled?",
    "What did the United States say about the attack?",
)


def seed_index(engine: Dossier) -> LexicalIndex:
    return engine.lexical.index(SEED_COLLECTION)


@pytest.fixture
def seed_cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The CLI's environment for a seed index under ``tmp_path`` (hashing embedder)."""
    monkeypatch.setenv("DOSSIER_DATA_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("DOSSIER_EMBEDDER", "hashing")
    monkeypatch.setenv("DOSSIER_DEFAULT_COLLECTION", SEED_COLLECTION)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def assert_same_answer(a: Answer, b: Answer) -> None:
    """Two ways of answering (a setting on, off) gave the same answer, citations and passages."""
    assert (a.text, a.refused, a.answerable_probability) == (
        b.text,
        b.refused,
        b.answerable_probability,
    )
    assert [(c.doc_id, c.start, c.end) for c in a.citations] == [
        (c.doc_id, c.start, c.end) for c in b.citations
    ]
    assert [p.passage.passage_id for p in a.passages] == [p.passage.passage_id for p in b.passages]


def hashing_seed_engine(tmp: Path, **overrides: Any) -> Dossier:
    """The seed collection ingested under ``tmp`` with the hashing embedder: fast, for tests
    of what is saved beside the index (which vector or span is used, not its quality)."""
    settings = make_settings(tmp, embedder="hashing", **overrides)
    engine = Dossier(settings)
    Ingestor(settings, engine.store, engine.embedder).ingest(
        CORPUS / SEED_COLLECTION, SEED_COLLECTION
    )
    return engine


def alpha_beta_engine(tmp: Path, **overrides: Any) -> Dossier:
    """Two one-article collections, "alpha" and "beta", on the hashing embedder: for the
    tests of what a key scoped to one collection may see."""
    settings = make_settings(tmp, embedder="hashing", default_collection="alpha", **overrides)
    engine = Dossier(settings)
    ingestor = Ingestor(settings, engine.store, engine.embedder)
    for name, text in (
        ("alpha", "Alpha news\n\nThe alpha harbour reopened after the storm."),
        ("beta", "Beta news\n\nThe beta railway strike ended on Friday."),
    ):
        folder = tmp / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
        ingestor.ingest(folder, name)
    return engine


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[str, FakeState]]:
    """The scripted OpenAI-compatible server (tests/fake_llm.py) on loopback: (base URL, state)."""
    state = FakeState(script=[Step(text="unused")])
    with LiveServer(create_fake_app(state)) as server:
        yield f"{server.url}/v1", state
