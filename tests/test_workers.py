"""`dossier serve --workers N`: every worker answers, and follows an ingest made elsewhere.

Real processes: the server with two uvicorn workers, and `dossier ingest` run as a
separate command while it serves; once on the embedded store, once with a `chroma run`
server (the scale-out topology: DOSSIER_STORE=chroma-http, one shared data dir).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dossier.testing import free_port, wait_for_http
from tests.conftest import CHROMA, CORPUS, SEED_COLLECTION

pytestmark = pytest.mark.slow
DOSSIER = Path(sys.executable).parent / "dossier"
ZEPPELIN = "Zeppelin over Tirana\n\nA zeppelin flew low over the capital on Monday."


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_")}
    env.update(
        DOSSIER_DATA_DIR=str(data_dir),
        DOSSIER_EMBEDDER="hashing",
        DOSSIER_DEFAULT_COLLECTION="col1",
        **extra,
    )
    return env


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(DOSSIER), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """Two workers serving col1 (the seed article) from a fresh data dir."""
    extra: dict[str, str] = {}
    if request.param == "chroma-http":
        if not CHROMA.exists() and not shutil.which("chroma"):
            pytest.skip("no chroma CLI")
        port = request.getfixturevalue("chroma_port")
        extra = {"DOSSIER_STORE": "chroma-http", "DOSSIER_CHROMA_PORT": str(port)}
    env = _env(tmp_path / "data", **extra)
    articles = tmp_path / "articles"
    shutil.copytree(CORPUS / SEED_COLLECTION, articles)
    _run(env, "ingest", str(articles), "--collection", "col1")
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(DOSSIER), "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_for_http(f"{url}/healthz", proc, timeout=120):
            pytest.fail(f"dossier serve --workers 2 did not start:\n{log.read_text()}")
        yield url, env
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _ask_each_worker(url: str, path: str, timeout: float) -> dict[str, httpx.Response]:
    """One response per worker: fresh connections until two workers have answered."""
    seen: dict[str, httpx.Response] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < 2 and time.monotonic() < deadline:
        with httpx.Client(timeout=10) as client:  # a new connection each time
            response = client.get(url + path)
        seen.setdefault(response.headers["x-dossier-worker"], response)
    assert len(seen) == 2, f"only workers {sorted(seen)} answered"
    return seen


@pytest.mark.parametrize("served", ["chroma-persistent", "chroma-http"], indirect=True)
def test_all_workers_follow_an_ingest_without_a_restart(
    served: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, env = served
    before = _ask_each_worker(url, "/v1/search?q=zeppelin&k=3", timeout=30)
    for response in before.values():
        assert response.status_code == 200
        assert not any("Zeppelin" in p["title"] for p in response.json()["passages"])

    (tmp_path / "articles" / "z.txt").write_text(ZEPPELIN, encoding="utf-8")
    _run(env, "ingest", str(tmp_path / "articles"), "--collection", "col1")

    # Every worker must answer from the new version, found by both retrievers (so the
    # vector index is current as well as BM25). How fast is benchmarks/scale.py's job;
    # the deadline here only stops a broken server from hanging the suite.
    pending: set[str] = set(before)
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:
        with httpx.Client(timeout=10) as client:  # a new connection: any worker may answer
            response = client.get(url + "/v1/search", params={"q": "zeppelin", "k": 3})
        top = response.json()["passages"][0]
        if top["title"].startswith("Zeppelin") and top["dense_similarity"] is not None:
            assert top["lexical_score"]
            pending.discard(response.headers["x-dossier-worker"])
    assert not pending, f"workers {sorted(pending)} still answer from the old version"
