"""Rate limit, body size, CORS and the answer timeout, over a real loopback server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from dossier.answer.base import AnswerContext
from dossier.answer.extractive import ExtractiveAnswerer
from dossier.engine import Dossier
from dossier.models import Answer, ScoredPassage
from dossier.testing import LiveServer
from ingest.pipeline import Ingestor
from service.app import create_app
from service.keys import KEYS_FILE, KeyStore
from tests.conftest import make_settings


class SlowAnswerer(ExtractiveAnswerer):
    def answer(
        self, question: str, passages: Sequence[ScoredPassage], context: AnswerContext
    ) -> Answer:
        time.sleep(1.0)
        return super().answer(question, passages, context)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Dossier:
    tmp = tmp_path_factory.mktemp("limits")
    settings = make_settings(tmp, embedder="hashing", default_collection="alpha")
    eng = Dossier(settings)
    folder = tmp / "a"
    folder.mkdir()
    (folder / "a.txt").write_text("Alpha\n\nThe harbour reopened after the storm.", "utf-8")
    Ingestor(settings, eng.store, eng.embedder).ingest(folder, "alpha")
    return eng


def _serve(engine: Dossier, tmp: Path, **overrides: Any) -> LiveServer:
    settings = make_settings(tmp, embedder="hashing", default_collection="alpha", **overrides)
    return LiveServer(create_app(settings, engine))


def test_a_client_over_its_limit_gets_429_and_others_are_unaffected(
    engine: Dossier, tmp_path: Path
) -> None:
    # The keys file lives in the app's own data dir; both clients use keys from it.
    settings = make_settings(tmp_path, auth=True)
    keys = KeyStore(settings.data_dir / KEYS_FILE)
    greedy = keys.create("greedy", "*", "read")[1]
    polite = keys.create("polite", "*", "read")[1]
    results: dict[str, list[httpx.Response]] = {"greedy": [], "polite": []}

    def run(name: str, token: str, n: int, pause: float) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            for _ in range(n):
                results[name].append(c.get(f"{url}/v1/collections"))
                time.sleep(pause)

    with _serve(engine, tmp_path, auth=True, rate_limit_per_minute=6, rate_limit_burst=5) as live:
        url = live.url
        threads = [
            threading.Thread(target=run, args=("greedy", greedy, 20, 0.0)),
            threading.Thread(target=run, args=("polite", polite, 4, 0.05)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    greedy_codes = [r.status_code for r in results["greedy"]]
    assert greedy_codes[:5] == [200] * 5 and greedy_codes.count(429) >= 14
    limited = next(r for r in results["greedy"] if r.status_code == 429)
    # One token every 10 s: the wait is at most that (rounded up to whole seconds).
    assert 1 <= int(limited.headers["retry-after"]) <= 10
    assert limited.json()["error"]["type"] == "rate_limited"
    assert [r.status_code for r in results["polite"]] == [200] * 4


def test_unauthenticated_callers_are_limited_per_ip(engine: Dossier, tmp_path: Path) -> None:
    with _serve(engine, tmp_path, rate_limit_per_minute=1, rate_limit_burst=3) as live:
        codes = [httpx.get(f"{live.url}/v1/collections").status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        assert httpx.get(f"{live.url}/healthz").status_code == 200  # never limited


def test_bodies_over_the_limit_get_413(engine: Dossier, tmp_path: Path) -> None:
    with _serve(engine, tmp_path, max_body_mb=0.001) as live:
        big = {"question": "x" * 900, "collection": "alpha", "stream": False, "top_k": 3}
        big["question"] = "y " * 600
        r = httpx.post(f"{live.url}/v1/ask", json=big)
        assert r.status_code == 413 and r.json()["error"]["type"] == "payload_too_large"

        def chunks() -> Iterator[bytes]:
            yield b'{"question": "'
            for _ in range(50):
                yield b"z" * 100
            yield b'"}'

        r = httpx.post(
            f"{live.url}/v1/ask", content=chunks(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 413
        ok = httpx.post(f"{live.url}/v1/ask", json={"question": "What reopened?"})
        assert ok.status_code == 200


def test_cors_allows_only_listed_origins(engine: Dossier, tmp_path: Path) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    with _serve(engine, tmp_path) as live:  # default: no origin is allowed
        r = httpx.options(
            f"{live.url}/v1/ask", headers={"Origin": "https://app.example", **preflight}
        )
        assert "access-control-allow-origin" not in r.headers
    with _serve(engine, tmp_path, cors_origins=["https://app.example"]) as live:
        r = httpx.options(
            f"{live.url}/v1/ask", headers={"Origin": "https://app.example", **preflight}
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        other = httpx.options(
            f"{live.url}/v1/ask", headers={"Origin": "https://evil.example", **preflight}
        )
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"


def test_slow_answers_time_out_with_504(tmp_path: Path, engine: Dossier) -> None:
    slow = Dossier(
        engine.settings, store=engine.store, embedder=engine.embedder, answerer=SlowAnswerer()
    )
    with _serve(slow, tmp_path, answer_timeout_s=0.3) as live:
        started = time.perf_counter()
        r = httpx.post(f"{live.url}/v1/ask", json={"question": "What reopened?"}, timeout=30)
        assert r.status_code == 504, r.text
        assert r.json()["error"]["type"] == "answer_timeout"
        assert time.perf_counter() - started < 0.9
