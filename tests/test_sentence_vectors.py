"""Sentence vectors saved at ingest: the same vectors, the same answers, old indexes still work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dossier.answer.selection import candidates
from dossier.engine import Dossier
from dossier.index import sentence_vectors
from dossier.index.embeddings import embed_array, embedder_id
from ingest.pipeline import Ingestor
from service.cli import app
from tests.conftest import (
    CORPUS,
    SEED_COLLECTION,
    SEED_QUESTIONS,
    assert_same_answer,
    hashing_seed_engine,
    make_settings,
    seed_index,
)


@pytest.fixture
def stored(tmp_path: Path) -> Dossier:
    return hashing_seed_engine(tmp_path)


def test_ingest_saves_the_vector_of_every_candidate_sentence(stored: Dossier) -> None:
    idx = seed_index(stored)
    assert idx.path is not None
    meta = json.loads((idx.path / "sentences" / "meta.json").read_text())
    vectors = idx.sentence_vectors(embedder_id(stored.embedder))
    assert vectors is not None and len(vectors) == meta["count"] == meta["embedded"] > 10
    texts = sorted({t for p in idx.passages for t in sentence_vectors.passage_sentences(p)})
    found = vectors.lookup(texts)
    assert set(found) == set(texts)
    expected = embed_array(stored.embedder, texts)
    assert np.array_equal(np.stack([found[t] for t in texts]), expected)
    # The answerer's candidates are among them, cut the same way.
    r = stored.retrieve(SEED_QUESTIONS[0], top_k=8)
    assert {c.text for c in candidates(r.passages)} <= set(found)


def test_answers_are_the_same_with_and_without_stored_vectors(
    stored: Dossier, tmp_path: Path
) -> None:
    off = Dossier(stored.settings.model_copy(update={"sentence_vectors": False}))
    for question in SEED_QUESTIONS:
        assert_same_answer(stored.ask(question), off.ask(question))
    # Every sentence came from the saved vectors: nothing was embedded on demand.
    assert len(stored._vectors) == 0 and len(off._vectors) > 0


def test_a_missing_sentence_is_embedded_on_demand(stored: Dossier) -> None:
    saved = seed_index(stored).sentence_vectors(embedder_id(stored.embedder))
    assert saved is not None
    known = next(iter(sorted(sentence_vectors.passage_sentences(seed_index(stored).passages[0]))))
    texts = [known, "A sentence no passage holds.", known]
    got = stored._embed_texts(texts, stored=saved)
    assert np.array_equal(got, embed_array(stored.embedder, texts))
    assert list(stored._vectors) == ["A sentence no passage holds."]


def test_an_index_saved_without_vectors_works_and_can_be_backfilled(seed_cli_env: Path) -> None:
    old = hashing_seed_engine(seed_cli_env, sentence_vectors=False)
    path = seed_index(old).path
    assert path is not None and not (path / "sentences").exists()
    before = old.ask(SEED_QUESTIONS[0])
    assert not before.refused and len(old._vectors) > 0  # embedded on demand, as before

    result = CliRunner().invoke(app, ["index-sentences"])
    assert result.exit_code == 0, result.output
    assert "sentences" in result.output and (path / "sentences" / "meta.json").exists()
    again = CliRunner().invoke(app, ["index-sentences"])
    assert "already saved" in again.output

    fresh = Dossier(old.settings.model_copy(update={"sentence_vectors": True}))
    after = fresh.ask(SEED_QUESTIONS[0])
    assert after.text == before.text and len(fresh._vectors) == 0


def test_a_new_version_reuses_the_vectors_of_unchanged_sentences(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    shutil.copytree(CORPUS / SEED_COLLECTION, folder)
    settings = make_settings(tmp_path, embedder="hashing")
    engine = Dossier(settings)
    ingestor = Ingestor(settings, engine.store, engine.embedder)
    first = ingestor.ingest(folder, "news")
    (folder / "extra.md").write_text(
        "# Harbour reopens\n\nThe harbour reopened on Monday after the storm. Ships came back.",
        encoding="utf-8",
    )
    second = ingestor.ingest(folder, "news")
    assert first.sentences_embedded > 10
    assert 0 < second.sentences_embedded < 5  # only the new article's sentences
    assert "sentences embedded" in second.summary()
    idx = engine.lexical.index("news")
    assert idx.path is not None
    meta = json.loads((idx.path / "sentences" / "meta.json").read_text())
    assert meta["reused"] == first.sentences_embedded
    saved = idx.sentence_vectors(embedder_id(engine.embedder))
    assert saved is not None
    text = "The harbour reopened on Monday after the storm."
    assert np.array_equal(saved.lookup([text])[text], embed_array(engine.embedder, [text])[0])


def test_vectors_of_another_embedder_are_not_used(stored: Dossier) -> None:
    path = seed_index(stored).path
    assert path is not None
    assert sentence_vectors.load(path, "OnnxMiniLMEmbedding:other") is None
    assert sentence_vectors.load(path, embedder_id(stored.embedder)) is not None
