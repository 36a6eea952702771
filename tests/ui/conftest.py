"""Real Dossier APIs on loopback for the UI tests (uvicorn in a thread, over the seed engine)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from streamlit.testing.v1 import AppTest

from dossier.answer.extractive import ExtractiveAnswerer
from dossier.answer.llm import LLMAnswerer
from dossier.answer.registry import build_answerer
from dossier.engine import Dossier, Retrieved
from dossier.models import Answer
from dossier.testing import LiveServer, free_port
from dossier.verify.offline import OfflineSupportScorer
from service.app import create_app
from tests.conftest import make_settings
from tests.fake_llm import FakeState, Step, create_fake_app

ROOT = Path(__file__).resolve().parents[2]
APP_FILE = ROOT / "ui" / "app.py"

FOLLOW_UP = "What did Iran say about it?"
# Words of the first turn's topic that the follow-up leaves implicit.
TOPIC = {"albania", "albanian", "expel", "expelled", "diplomats", "rama", "tirana", "ambassador"}


def carries_topic(standalone: str | None) -> bool:
    """The follow-up as searched: the typed words, plus some of the topic's."""
    if not standalone or not standalone.startswith(FOLLOW_UP):
        return False
    added = {w.strip("(),;.?").lower() for w in standalone[len(FOLLOW_UP) :].split()}
    return bool(added & TOPIC)


class SlowAsk:
    """The seed engine, but ``ask`` and ``chat_retrieve`` first sleep: a stand-in for a slow
    answerer (the chat page's stream opens only after retrieval)."""

    def __init__(self, inner: Dossier, delay_s: float) -> None:
        self._inner = inner
        self._delay_s = delay_s

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def ask(self, *args: Any, **kwargs: Any) -> Answer:
        time.sleep(self._delay_s)
        return self._inner.ask(*args, **kwargs)

    def chat_retrieve(self, *args: Any, **kwargs: Any) -> Retrieved:
        time.sleep(self._delay_s)
        return self._inner.chat_retrieve(*args, **kwargs)


@pytest.fixture(scope="session")
def live_api(seed_engine: Dossier, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API's URL. Feedback goes to its own temp dir: the seed index is shared, read-only."""
    settings = make_settings(tmp_path_factory.mktemp("api"))
    with LiveServer(create_app(settings, dossier=seed_engine)) as server:
        yield server.url


@pytest.fixture
def write_api(tmp_path: Path) -> Iterator[str]:
    """An empty API of its own that the test may write to (hashing embedder: fast). More
    than one document in one upload becomes a background job."""
    settings = make_settings(tmp_path, embedder="hashing", ingest_sync_max_documents=1)
    with LiveServer(create_app(settings, dossier=Dossier(settings))) as server:
        yield server.url


@pytest.fixture(scope="session")
def slow_api(seed_engine: Dossier, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = make_settings(tmp_path_factory.mktemp("slow-api"))
    with LiveServer(
        create_app(settings, dossier=cast(Dossier, SlowAsk(seed_engine, 1.5)))
    ) as server:
        yield server.url


@contextmanager
def llm_api(seed_engine: Dossier, tmp: Path, step: Step) -> Iterator[str]:
    """An API whose answerer is the LLM one, talking over real HTTP on loopback to the
    scripted model server of tests/fake_llm.py, which answers every request with ``step``.
    Condensing stays offline, so only answers reach the model."""
    state = FakeState(script=[step])
    with LiveServer(create_fake_app(state)) as llm:
        llm_config: dict[str, Any] = {
            "answerer": "llm",
            "llm_base_url": f"{llm.url}/v1",
            "llm_model": "fake",
            "llm_retries": 0,
            "llm_timeout_s": 5.0,
            "chat_condenser": "offline",
        }
        # The engine reads the shared seed index; the app writes feedback to its own temp dir.
        settings = seed_engine.settings.model_copy(update=llm_config)
        gate = build_answerer(settings, "extractive")
        assert isinstance(gate, ExtractiveAnswerer)
        answerer = LLMAnswerer(
            settings, fallback=gate, gate=gate, scorer=OfflineSupportScorer(seed_engine.embedder)
        )
        engine = Dossier(
            settings, store=seed_engine.store, embedder=seed_engine.embedder, answerer=answerer
        )
        try:
            with LiveServer(create_app(make_settings(tmp, **llm_config), dossier=engine)) as api:
                yield api.url
        finally:
            answerer.close()


@pytest.fixture(scope="session")
def degraded_api(seed_engine: Dossier, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Every answer is the extractive fallback, flagged degraded: the model server answers
    each request with HTTP 500."""
    with llm_api(seed_engine, tmp_path_factory.mktemp("degraded-api"), Step(status=500)) as url:
        yield url


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"


AppFactory = Callable[..., AppTest]


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, live_api: str, tmp_path: Path) -> AppFactory:
    """An AppTest bound to an API URL (the live one unless given) and an empty reports dir."""

    def make(api_url: str | None = None, **env: str) -> AppTest:
        monkeypatch.setenv("DOSSIER_API_URL", api_url or live_api)
        monkeypatch.setenv("DOSSIER_EVALS_REPORTS_DIR", str(tmp_path / "reports"))
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return AppTest.from_file(str(APP_FILE), default_timeout=30)

    return make
