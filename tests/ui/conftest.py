"""Real Dossier APIs on loopback for the UI tests (uvicorn in a thread, over the seed engine)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from dossier.engine import Dossier
from dossier.models import Answer
from dossier.testing import LiveServer, free_port
from service.app import create_app
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]
APP_FILE = ROOT / "ui" / "app.py"


class SlowAsk:
    """The seed engine, but ``ask`` first sleeps: a stand-in for a slow answerer."""

    def __init__(self, inner: Dossier, delay_s: float) -> None:
        self._inner = inner
        self._delay_s = delay_s

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def ask(self, *args: Any, **kwargs: Any) -> Answer:
        time.sleep(self._delay_s)
        return self._inner.ask(*args, **kwargs)


@pytest.fixture(scope="session")
def live_api(seed_engine: Dossier, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API's URL. Feedback goes to its own temp dir: the seed index is shared, read-only."""
    settings = make_settings(tmp_path_factory.mktemp("api"))
    with LiveServer(create_app(settings, dossier=seed_engine)) as server:
        yield server.url


@pytest.fixture(scope="session")
def slow_api(seed_engine: Dossier, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = make_settings(tmp_path_factory.mktemp("slow-api"))
    with LiveServer(
        create_app(settings, dossier=cast(Dossier, SlowAsk(seed_engine, 1.5)))
    ) as server:
        yield server.url


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"
