"""The sentence table saved at ingest: the spans and terms computed on demand, the same
features and answers, and indexes saved before it existed still work and can be completed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dossier.answer.selection import candidates, featurize
from dossier.engine import Dossier
from dossier.index import sentence_table, sentence_vectors
from dossier.models import Passage
from dossier.text import sentence_spans, term_set, terms
from service.cli import app
from tests.conftest import SEED_QUESTIONS, assert_same_answer, hashing_seed_engine, seed_index


def test_saved_spans_and_terms_equal_the_on_demand_ones(seed_engine: Dossier) -> None:
    idx = seed_index(seed_engine)
    table = idx.sentence_table()
    assert table is not None and idx.path is not None
    meta = json.loads((idx.path / "sentences" / "meta.json").read_text())
    assert meta["format"] == 2 and meta["passages"] == len(table) > 5
    for p in idx.passages:
        saved = table.get(p.text)
        assert saved is not None, p.passage_id
        spans = sentence_spans(p.text)
        assert list(saved.spans) == spans
        assert list(saved.terms) == [frozenset(terms(p.text[s:e])) for s, e in spans]
        assert saved == sentence_table.split(p.text)
    # A text the table does not hold is not mistaken for one it does.
    assert table.get(idx.passages[0].text + " ") is None
    assert table.get("") is None


@pytest.mark.parametrize("question", SEED_QUESTIONS)
def test_candidates_and_features_are_the_same_from_the_table(
    seed_engine: Dossier, question: str
) -> None:
    r = seed_engine.retrieve(question, top_k=8)
    assert r.context.sentences is not None
    table = seed_index(seed_engine).sentence_table()
    assert table is not None
    assert all(table.get(sp.passage.text) is not None for sp in r.passages)  # no fallback
    fast = candidates(r.passages, r.context.sentences)
    slow = candidates(r.passages)
    assert fast == slow and len(fast) > 5
    for c in fast:
        assert c.context_terms == c.terms | term_set(c.previous) | term_set(c.following)
    args = (r.context.question_vector, r.context.idf, r.context.embed)
    a = featurize(question, args[0], fast, args[1], args[2])
    b = featurize(question, args[0], slow, args[1], args[2])
    assert np.array_equal(a.X, b.X)


def count_splits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every passage text split on demand from now on (not found in a saved table)."""
    calls: list[str] = []
    on_demand = sentence_table.split

    def counted(text: str) -> sentence_table.PassageSentences:
        calls.append(text)
        return on_demand(text)

    monkeypatch.setattr(sentence_table, "split", counted)
    return calls


def test_answers_are_the_same_with_the_table_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on = hashing_seed_engine(tmp_path)
    off = Dossier(on.settings.model_copy(update={"stored_sentences": False}))
    assert seed_index(on).sentence_table() is not None and seed_index(off).sentence_table() is None
    splits = count_splits(monkeypatch)
    for question in SEED_QUESTIONS:
        before = len(splits)
        a = on.ask(question)
        assert len(splits) == before  # every passage came from the table
        assert_same_answer(a, off.ask(question))
    assert splits  # the table off: split on demand


def test_a_passage_missing_from_the_table_is_split_on_demand(seed_engine: Dossier) -> None:
    idx = seed_index(seed_engine)
    p = idx.passages[0]
    other = Passage(
        passage_id="not-saved",
        doc_id=p.doc_id,
        text=p.text + " One more sentence.",
        start=p.start,
        end=p.end + 20,
        title=p.title,
    )
    assert idx.passage_sentences(other) == sentence_table.split(other.text)
    assert "not-saved" in idx._sentences


def test_vectors_saved_before_the_table_work_and_index_sentences_adds_it(
    seed_cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = hashing_seed_engine(seed_cli_env)
    path = seed_index(engine).path
    assert path is not None
    folder = path / "sentences"
    before = engine.ask(SEED_QUESTIONS[0])
    # What a format-1 directory looked like: vectors only, no format in meta.json.
    meta = json.loads((folder / "meta.json").read_text())
    for name in sentence_table.FILES:
        (folder / name).unlink()
    del meta["format"], meta["passages"]
    (folder / "meta.json").write_text(json.dumps(meta))
    assert sentence_vectors.load_table(path) is None

    old = Dossier(engine.settings)
    assert seed_index(old).sentence_table() is None
    assert seed_index(old).sentence_vectors(meta["embedder"]) is not None
    assert old.ask(SEED_QUESTIONS[0]).text == before.text  # split on demand, as before

    result = CliRunner().invoke(app, ["index-sentences"])
    assert result.exit_code == 0, result.output
    assert "already saved" in result.output and "passages" in result.output
    completed = json.loads((folder / "meta.json").read_text())
    assert completed["format"] == 2 and completed["count"] == meta["count"]
    again = CliRunner().invoke(app, ["index-sentences"])
    assert again.exit_code == 0 and again.output.strip().endswith("sentence vectors already saved")

    fresh = Dossier(engine.settings)
    assert seed_index(fresh).sentence_table() is not None
    splits = count_splits(monkeypatch)
    assert fresh.ask(SEED_QUESTIONS[0]).text == before.text
    assert not splits
