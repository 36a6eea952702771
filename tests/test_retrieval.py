"""Hybrid retrieval: fusion behaviour and index freshness after ingest."""

from __future__ import annotations

from pathlib import Path

from dossier.engine import Dossier
from dossier.index.retrieval import reciprocal_rank, relative_score
from dossier.models import Passage, ScoredPassage
from ingest.pipeline import Ingestor
from tests.conftest import make_settings


def _sp(pid: str, score: float) -> ScoredPassage:
    return ScoredPassage(Passage(pid, "d", pid, 0, 1, "t"), score)


def test_fusions_reward_agreement() -> None:
    dense = [_sp("a", 0.9), _sp("b", 0.8), _sp("c", 0.1)]
    lexical = [_sp("b", 12.0), _sp("d", 11.0), _sp("a", 1.0)]
    for fuse in (reciprocal_rank, relative_score):
        scores = fuse([dense, lexical], [0.5, 0.5])
        assert max(scores, key=scores.__getitem__) == "b"
        assert set(scores) == {"a", "b", "c", "d"}


def test_search_is_hybrid_and_sorted(seed_engine: Dossier) -> None:
    results = seed_engine.search("Mujahideen-e-Khalq MEK complex west of Tirana", k=4)
    assert "Mujahideen-e-Khalq" in results[0].passage.text
    assert results[0].lexical_score and results[0].dense_similarity
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_bm25_sees_new_documents_after_ingest(tmp_path: Path, corpus_copy: Path) -> None:
    # Checking the version on every request: the default (0.5 s) may serve the old one briefly.
    settings = make_settings(tmp_path, version_check_s=0)
    engine = Dossier(settings)
    ingestor = Ingestor(settings, engine.store, engine.embedder)
    ingestor.ingest(corpus_copy, "col1")
    assert not engine.lexical.retrieve("zeppelin", "col1", 3)
    (corpus_copy / "z.txt").write_text("Zeppelin over Tirana\n\nA zeppelin flew.", encoding="utf-8")
    ingestor.ingest(corpus_copy, "col1")
    hits = engine.search("zeppelin", "col1", 3)
    assert hits[0].passage.title == "Zeppelin over Tirana"
