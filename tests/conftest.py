"""Shared fixtures: real Chroma on a temp dir, the real embedder, the real seed corpus.

Server helpers (LiveServer, free_port, wait_for_http) live in ``dossier.testing``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dossier import testing
from dossier.engine import Dossier
from dossier.settings import Settings
from dossier.testing import LiveServer
from ingest.pipeline import Ingestor

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
SEED_COLLECTION = "albania-iran"
SHARED = ROOT.parent / "shared"
BBC = SHARED / "benchmarks" / "news-bbc" / "bbc"


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    return testing.make_settings(tmp, CORPUS, **overrides)


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
