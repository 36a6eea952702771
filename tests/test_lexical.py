"""The saved BM25 index: written by ingestion, mapped by servers, followed by version."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dossier.engine import Dossier
from dossier.index import lexical
from dossier.index.lexical import LexicalIndexes, PassageTable
from dossier.index.store import PassageStore
from dossier.models import Passage
from dossier.text import terms
from ingest.pipeline import Ingestor
from tests.conftest import make_settings

ZEPPELIN = "Zeppelin over Tirana\n\nA zeppelin flew low over the capital on Monday."


def _engine(tmp: Path, **overrides: Any) -> tuple[Dossier, Ingestor]:
    settings = make_settings(tmp, embedder="hashing", version_check_s=0, **overrides)
    engine = Dossier(settings)
    return engine, Ingestor(settings, engine.store, engine.embedder)


class CountingStore:
    """Wraps a store to count full passage reads (what a rebuild costs) and delay them."""

    def __init__(self, inner: PassageStore, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.full_reads = 0

    def all_passages(self, name: str) -> list[Passage]:
        self.full_reads += 1
        time.sleep(self.delay)
        return self.inner.all_passages(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_saved_index_answers_like_a_fresh_build(tmp_path: Path, corpus_copy: Path) -> None:
    engine, ingestor = _engine(tmp_path)
    ingestor.ingest(corpus_copy, "col1")
    tag = engine.store.version_tag("col1")
    saved = lexical.load(lexical.index_dir(engine.settings.lexical_path, "col1", tag, 0.9, 0.4))
    built, _ = lexical.build(engine.store.all_passages("col1"), tag[1], k1=0.9, b=0.4)

    assert isinstance(saved.passages, PassageTable) and saved.size == built.size > 3
    assert dict(saved.df) == built.df
    assert saved.idf("albania") == pytest.approx(built.idf("albania"))
    for query in ("iranian diplomats expelled", "cyberattack july infrastructure", "rama"):
        q = terms(query)
        got = [(p.passage_id, round(s, 5)) for p, s in saved.search(q, 5)]
        want = [(p.passage_id, round(s, 5)) for p, s in built.search(q, 5)]
        assert got == want and got
    assert list(saved.passages) == built.passages
    assert saved.passages[-1] == built.passages[-1]
    assert saved.passage_sentences(saved.passages[0]) == built.passage_sentences(built.passages[0])


def test_a_server_loads_the_index_instead_of_rebuilding_it(
    tmp_path: Path, corpus_copy: Path
) -> None:
    _, ingestor = _engine(tmp_path)
    ingestor.ingest(corpus_copy, "col1")

    engine, _ = _engine(tmp_path)  # a new process, as far as the index is concerned
    store = CountingStore(engine.store)
    engine._store = store  # type: ignore[assignment]
    hits = engine.search("Iranian diplomats Tirana", "col1", 3)
    assert hits and hits[0].lexical_score
    assert store.full_reads == 0
    assert engine.lexical.index("col1").path is not None


def test_a_new_version_is_picked_up_and_queries_go_on_meanwhile(
    tmp_path: Path, corpus_copy: Path
) -> None:
    server, ingestor = _engine(tmp_path)
    ingestor.ingest(corpus_copy, "col1")
    assert not server.lexical.retrieve("zeppelin", "col1", 3)
    old = server.lexical.index("col1")

    # An ingest elsewhere (a second engine on the same data dir) publishes version 2.
    (corpus_copy / "z.txt").write_text(ZEPPELIN, encoding="utf-8")
    ingestor.ingest(corpus_copy, "col1")
    assert server.lexical.retrieve("zeppelin", "col1", 3)[0].passage.title.startswith("Zeppelin")
    assert server.lexical.index("col1").version == old.version + 1

    # Version 3 without a saved index (as if written by an older Dossier): the server
    # builds it in the background and answers from version 2 until it is ready.
    (corpus_copy / "z.txt").write_text(ZEPPELIN.replace("Monday", "Tuesday"), encoding="utf-8")
    ingestor.ingest(corpus_copy, "col1")
    v3 = server.store.version_tag("col1")
    shutil.rmtree(lexical.index_dir(server.settings.lexical_path, "col1", v3, 0.9, 0.4))
    store = CountingStore(server.store, delay=1.0)
    server.lexical.indexes.store = store  # type: ignore[assignment]
    t0 = time.monotonic()
    during = server.lexical.index("col1")
    assert during.version == old.version + 1 and time.monotonic() - t0 < 0.5
    deadline = time.monotonic() + 30
    while server.lexical.index("col1").version != v3[1]:
        assert time.monotonic() < deadline, "the background build never finished"
        time.sleep(0.05)
    assert store.full_reads == 1
    hit = server.lexical.retrieve("zeppelin tuesday", "col1", 1)[0]
    assert "Tuesday" in hit.passage.text


def test_switching_versions_under_concurrent_queries(tmp_path: Path, corpus_copy: Path) -> None:
    server, ingestor = _engine(tmp_path)
    ingestor.ingest(corpus_copy, "col1")
    errors: list[BaseException] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                assert server.search("Iranian diplomats", "col1", 3)
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for n in range(3):
        (corpus_copy / f"extra{n}.txt").write_text(f"Extra {n}\n\nIranian diplomats {n}.")
        ingestor.ingest(corpus_copy, "col1")
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert server.lexical.index("col1").version == server.store.version("col1")


def test_a_recreated_collection_does_not_reuse_the_old_index(
    tmp_path: Path, corpus_copy: Path
) -> None:
    engine, ingestor = _engine(tmp_path)
    (corpus_copy / "z.txt").write_text(ZEPPELIN, encoding="utf-8")
    ingestor.ingest(corpus_copy, "col1")
    assert engine.lexical.retrieve("zeppelin", "col1", 1)
    engine.store.drop_collection("col1")
    (corpus_copy / "z.txt").unlink()
    ingestor.ingest(corpus_copy, "col1")  # version 1 again, with other passages
    assert not engine.lexical.retrieve("zeppelin", "col1", 1)


def test_old_versions_are_pruned(tmp_path: Path, corpus_copy: Path) -> None:
    engine, ingestor = _engine(tmp_path)
    for n in range(4):
        (corpus_copy / f"extra{n}.txt").write_text(f"Extra {n}\n\nSomething new, number {n}.")
        ingestor.ingest(corpus_copy, "col1")
    saved = sorted(p.name for p in (engine.settings.lexical_path / "col1").iterdir())
    assert len(saved) == lexical.KEEP_VERSIONS
    assert any(name.startswith(f"v{engine.store.version('col1')}-") for name in saved)


def test_an_unchanged_ingest_saves_a_missing_index(tmp_path: Path, corpus_copy: Path) -> None:
    engine, ingestor = _engine(tmp_path)
    ingestor.ingest(corpus_copy, "col1")
    shutil.rmtree(engine.settings.lexical_path)
    report = ingestor.ingest(corpus_copy, "col1")
    assert not report.changed
    tag = engine.store.version_tag("col1")
    assert (lexical.index_dir(engine.settings.lexical_path, "col1", tag, 0.9, 0.4)).is_dir()


def test_without_a_data_dir_the_index_is_built_in_memory(tmp_path: Path, corpus_copy: Path) -> None:
    engine, ingestor = _engine(tmp_path)
    ingestor.ingest(corpus_copy, "col1")
    indexes = LexicalIndexes(engine.store, None, k1=0.9, b=0.4)
    index = indexes.get("col1")
    assert index.path is None and index.search(["iranian"], 2)
    assert index is indexes.get("col1")


def test_empty_collection(tmp_path: Path) -> None:
    engine, ingestor = _engine(tmp_path)
    (tmp_path / "empty").mkdir()
    ingestor.ingest(tmp_path / "empty", "col1")
    index = engine.lexical.index("col1")
    assert index.size == 0 and not index.search(["anything"], 3)
    assert index.idf("anything") > 0


def test_a_new_version_tokenizes_only_new_passages(
    tmp_path: Path, corpus_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, ingestor = _engine(tmp_path)
    ingestor.ingest(corpus_copy, "col1")
    tokenized: list[str] = []

    def counting(text: str) -> list[str]:
        tokenized.append(text)
        return terms(text)

    monkeypatch.setattr(lexical, "terms", counting)
    (corpus_copy / "z.txt").write_text(ZEPPELIN, encoding="utf-8")
    report = ingestor.ingest(corpus_copy, "col1")
    assert len(tokenized) == report.chunks_embedded >= 1
    assert all("zeppelin" in t.lower() for t in tokenized)
    # The reused terms index exactly as fresh ones would.
    built, _ = lexical.build(engine.store.all_passages("col1"), 0, k1=0.9, b=0.4)
    assert dict(engine.lexical.index("col1").df) == built.df
