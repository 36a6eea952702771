"""Several API hosts on one PostgreSQL (DOSSIER_STATE_URL): two `dossier serve` processes,
each with its own local data dir and index, share keys and conversations."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dossier.testing import free_port, wait_for_http
from tests.conftest import CORPUS, ROOT, SEED_COLLECTION
from tests.postgres import PostgresServer

FIRST = "Why did Albania expel Iranian diplomats?"
FOLLOW_UP = "What did Iran say about it?"


def _env(data_dir: Path, state_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_")}
    env.update(
        DOSSIER_DATA_DIR=str(data_dir),
        DOSSIER_CORPUS_DIR=str(CORPUS),
        DOSSIER_STATE_URL=state_url,
        DOSSIER_EMBEDDER="hashing",
        DOSSIER_AUTH="true",
        DOSSIER_ANSWER_MODEL="linear",  # the faster answer model: this is about state
    )
    return env


def _cli(env: dict[str, str], *args: str) -> str:
    # `-m` from the repository root: the code under test, wherever the venv points.
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def hosts(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Two hosts, each its own index (the seed collection) and data dir; one database."""
    state_url = postgres_server.new_database()
    envs: list[dict[str, str]] = []
    urls: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, workers in ((1, "1"), (2, "2")):
            tmp = tmp_path_factory.mktemp(f"host{i}")
            env = _env(tmp / "index", state_url)
            if i == 1:
                _cli(env, "ingest", str(CORPUS / SEED_COLLECTION), "--collection", SEED_COLLECTION)
            else:  # the same index, copied: ingesting it again would only take longer
                shutil.copytree(Path(envs[0]["DOSSIER_DATA_DIR"]), tmp / "index")
            port = free_port()
            with (tmp / "serve.log").open("ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "service.cli", "serve", "--port", str(port),
                     "--workers", workers],
                    env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            procs.append(proc)
            url = f"http://127.0.0.1:{port}"
            assert wait_for_http(f"{url}/healthz", proc, timeout=120), (
                tmp / "serve.log"
            ).read_text()
            envs.append(env)
            urls.append(url)
        yield {"envs": envs, "urls": urls}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def _client(url: str, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=120)


@pytest.mark.slow
def test_a_key_made_on_one_host_works_on_the_other(hosts: dict[str, Any]) -> None:
    env1, env2 = hosts["envs"]
    token = _cli(env1, "keys", "create", "--name", "app", "--collections", "*", "--role", "write")
    token = token.strip()
    key_id = token.removeprefix("dsk_").split("_", 1)[0]
    assert "app" in _cli(env2, "keys", "list")  # the other host's CLI lists it
    for url in hosts["urls"]:
        with _client(url, token) as c:
            assert c.get("/v1/collections").status_code == 200
        with _client(url, None) as c:
            assert c.get("/v1/collections").status_code == 401
    # Revoked through host 2: refused by both at once (keys are read per request).
    _cli(env2, "keys", "revoke", key_id)
    for url in hosts["urls"]:
        with _client(url, token) as c:
            assert c.get("/v1/collections").status_code == 401


@pytest.mark.slow
def test_a_conversation_started_on_one_host_continues_on_the_other(
    hosts: dict[str, Any],
) -> None:
    env1, _ = hosts["envs"]
    url1, url2 = hosts["urls"]
    token = _cli(env1, "keys", "create", "--name", "chat", "--collections", "*", "--role", "read")
    with _client(url1, token.strip()) as one, _client(url2, token.strip()) as two:
        r = one.post("/v1/conversations", json={"collection": SEED_COLLECTION})
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        r = one.post(f"/v1/conversations/{cid}/messages", json={"content": FIRST})
        assert r.status_code == 200, r.text
        r = two.post(f"/v1/conversations/{cid}/messages", json={"content": FOLLOW_UP})
        assert r.status_code == 200, r.text
        # Host 2 read host 1's turn: the follow-up was searched with its topic.
        standalone = r.json()["standalone_question"]
        assert standalone.startswith(FOLLOW_UP) and standalone != FOLLOW_UP, standalone
        for c in (one, two):
            got = c.get(f"/v1/conversations/{cid}").json()
            assert got["message_count"] == 4
            assert [m["content"] for m in got["messages"]][::2] == [FIRST, FOLLOW_UP]
            assert [x["id"] for x in c.get("/v1/conversations").json()] == [cid]
        assert two.delete(f"/v1/conversations/{cid}").status_code == 204
        assert one.get(f"/v1/conversations/{cid}").status_code == 404
