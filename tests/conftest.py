"""Shared fixtures: real Chroma on a temp dir, the real embedder, the real seed corpus."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dossier.engine import Dossier
from dossier.settings import Settings
from ingest.pipeline import Ingestor

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
SEED_COLLECTION = "albania-iran"
SHARED = ROOT.parent / "shared"
BBC = SHARED / "benchmarks" / "news-bbc" / "bbc"


def make_settings(tmp: Path, **overrides: object) -> Settings:
    return Settings(data_dir=tmp / "index", corpus_dir=CORPUS, _env_file=None, **overrides)  # type: ignore[call-arg]


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
