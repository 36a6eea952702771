"""The OpenAPI contract, fuzzed by schemathesis against a real server (``--checks all``).

Two runs over one server that requires keys: with an admin key (every operation, stateful
links included) and without a key (every operation must answer its documented 401).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dossier.engine import Dossier
from dossier.testing import LiveServer
from ingest.pipeline import Ingestor
from service.app import create_app
from service.keys import KEYS_FILE, KeyStore
from tests.conftest import CORPUS, SEED_COLLECTION, make_settings

ST = Path(sys.executable).parent / "st"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("contract")
    settings = make_settings(
        tmp,
        embedder="hashing",
        auth=True,
        rate_limit_per_minute=1_000_000,
        rate_limit_burst=100_000,
        # POST /v1/collections/{name}/urls is fuzzed with made-up URLs: every one is refused
        # before any DNS lookup or connection, so the run stays off the network.
        fetch_public=False,
    )
    engine = Dossier(settings)
    Ingestor(settings, engine.store, engine.embedder).ingest(
        CORPUS / SEED_COLLECTION, SEED_COLLECTION
    )
    _, token = KeyStore(settings.data_dir / KEYS_FILE).create("fuzzer", "*", "admin")
    with LiveServer(create_app(settings, engine)) as live:
        yield {"url": live.url, "token": token, "tmp": tmp}


def _run(url: str, out: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    report = out / "report.ndjson"
    cmd = [
        str(ST),
        # Per-operation settings: what JSON Schema cannot express about conversations.
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        "10",
        "--generation-deterministic",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        *args,
    ]
    # Run in the temp dir: schemathesis keeps a cache folder in its working directory.
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, cwd=out)
    return proc, _cases(proc.stdout)


def _cases(stdout: str) -> int:
    found = re.search(r"Test cases:\s*\n?\s*(\d+) generated", stdout)
    return int(found.group(1)) if found else 0


@pytest.mark.slow
def test_schemathesis_with_a_key(server: dict[str, Any]) -> None:
    proc, cases = _run(
        server["url"],
        server["tmp"],
        "--max-examples",
        "30",
        "-H",
        f"Authorization: Bearer {server['token']}",
    )
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stdout[-20000:]
    assert cases >= 1000
    assert "✅ Stateful" in proc.stdout and "API Links:" in proc.stdout


@pytest.mark.slow
def test_schemathesis_without_a_key(server: dict[str, Any]) -> None:
    proc, cases = _run(server["url"], server["tmp"], "--max-examples", "10")
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stdout[-20000:]
    assert cases > 0
