"""Ingestion against a real Chroma on a temp dir with the real embedder."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dossier.engine import Dossier
from dossier.errors import EmbedderMismatch, InvalidInput
from ingest.cleaning import Cleaner
from ingest.loaders import load
from ingest.pipeline import Ingestor
from tests.conftest import CORPUS, SEED_COLLECTION, make_settings

SEED = next((CORPUS / SEED_COLLECTION).glob("*.md"))
SECOND = """---
title: A second article
publisher: Test Wire
published: 2022-09-08
---
A second article

NATO allies discussed the cyberattack on Albania at a meeting in Brussels.

The alliance said an attack on one member could trigger collective defence.
"""


def _ingestor(tmp: Path, **overrides: object) -> Ingestor:
    settings = make_settings(tmp, **overrides)
    engine = Dossier(settings)
    return Ingestor(settings, engine.store, engine.embedder)


def _state(ing: Ingestor, collection: str = "col1") -> tuple[dict[str, str], dict[str, str]]:
    docs = {d: info.content_hash for d, info in ing.store.documents(collection).items()}
    return docs, ing.store.passage_refs(collection)


def test_seed_boilerplate_is_removed_and_text_kept(seed_engine: Dossier) -> None:
    (info,) = seed_engine.documents()
    text = seed_engine.document(info.doc_id).text
    for junk in ("- Advertisement -", "Recent Articles", "Related Stories", "Credit: /"):
        assert junk not in text
    # Typos and odd phrasing are the source's; cleaning must not edit sentences.
    assert "Mr. Ram’s overwhelming response" in text
    assert "Toby Lues, global head of threat analysis" in text
    assert info.title == "Albania cuts ties to Iran, blaming it for massive cyberattack"


def test_cleaner_only_drops_whole_lines() -> None:
    cleaner = Cleaner([r"-\s*advertisement\s*-", r"recent articles"])
    out = cleaner.clean(
        "Intro\n\n- Advertisement -\n\nWe saw recent articles about it.\nRecent Articles"
    )
    assert out == "Intro\n\nWe saw recent articles about it."


def test_passage_offsets_point_into_the_document(seed_engine: Dossier) -> None:
    (info,) = seed_engine.documents()
    text = seed_engine.document(info.doc_id).text
    passages = seed_engine.store.all_passages(SEED_COLLECTION)
    assert len(passages) == info.chunks >= 3
    for p in passages:
        assert text[p.start : p.end] == p.text
    assert min(p.start for p in passages) == 0


def test_reingest_is_idempotent_and_detects_changes(tmp_path: Path, corpus_copy: Path) -> None:
    (corpus_copy / "second.md").write_text(SECOND, encoding="utf-8")
    ing = _ingestor(tmp_path)
    first = ing.ingest(corpus_copy, "col1")
    assert (first.added, first.updated, first.unchanged) == (2, 0, 0)
    docs1, passages1 = _state(ing)
    version = ing.store.version("col1")

    again = ing.ingest(corpus_copy, "col1")
    assert (again.added, again.updated, again.unchanged, again.chunks_embedded) == (0, 0, 2, 0)
    assert _state(ing) == (docs1, passages1)
    assert ing.store.version("col1") == version  # nothing changed, so BM25 caches stay valid

    changed = SECOND.replace("Brussels", "Tirana")
    (corpus_copy / "second.md").write_text(changed, encoding="utf-8")
    upd = ing.ingest(corpus_copy, "col1")
    assert (upd.updated, upd.unchanged) == (1, 1)
    docs2, passages2 = _state(ing)
    second_id = next(d for d, h in docs2.items() if docs1[d] != h)
    # Exactly the changed article's passages were replaced; the seed's are untouched.
    assert {p for p, d in passages2.items() if d != second_id} == {
        p for p, d in passages1.items() if d != second_id
    }
    assert upd.chunks_embedded == sum(1 for d in passages2.values() if d == second_id)
    assert ing.store.version("col1") > version

    (corpus_copy / "second.md").unlink()
    gone = ing.ingest(corpus_copy, "col1")
    assert (gone.removed, gone.unchanged) == (1, 1)
    docs3, passages3 = _state(ing)
    assert second_id not in docs3 and second_id not in passages3.values()


def test_duplicates_are_stored_once_and_reported(tmp_path: Path, corpus_copy: Path) -> None:
    text = SEED.read_text(encoding="utf-8")
    # Same article, different whitespace and case: the same normalised text.
    (corpus_copy / "copy.md").write_text(text.replace("\n\n", "\n\n\n").upper(), encoding="utf-8")
    ing = _ingestor(tmp_path)
    report = ing.ingest(corpus_copy, "col1")
    assert report.added == 1
    assert report.duplicates == [(SEED.name, "copy.md")] or report.duplicates == [
        ("copy.md", SEED.name)
    ]
    (info,) = ing.store.documents("col1").values()
    assert len(info.duplicates) == 1
    assert ing.ingest(corpus_copy, "col1").chunks_embedded == 0


def test_non_utf8_file_is_decoded_with_a_logged_fallback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cafe.txt").write_bytes(
        "Café owner fined\n\nThe café’s owner paid €200.".encode("cp1252")
    )
    ing = _ingestor(tmp_path)
    with caplog.at_level(logging.WARNING):
        report = ing.ingest(folder, "col1")
    assert report.added == 1 and not report.failed
    assert any("cp1252" in r.message for r in caplog.records)
    (doc_id,) = ing.store.documents("col1")
    assert "The café’s owner paid €200." in ing.store.get_document("col1", doc_id).text


def test_html_markup_is_stripped_and_title_kept(tmp_path: Path) -> None:
    page = tmp_path / "a.html"
    page.write_text(
        "<html><head><title>Iran responds</title><script>var ad=1;</script></head>"
        "<body><nav>Home | World</nav><h1>Iran responds</h1><p>Tehran <b>denied</b> it.</p>"
        "<p>Officials spoke.</p></body></html>",
        encoding="utf-8",
    )
    raw = load(page)
    assert raw.title == "Iran responds"
    assert "Tehran denied it." in raw.text and "Officials spoke." in raw.text
    assert "var ad" not in raw.text and "<" not in raw.text and "Home | World" not in raw.text


def test_bad_inputs_fail_clearly(tmp_path: Path) -> None:
    ing = _ingestor(tmp_path)
    with pytest.raises(InvalidInput, match="does not exist"):
        ing.ingest(tmp_path / "missing", "col1")
    with pytest.raises(InvalidInput, match="collection name"):
        ing.ingest(tmp_path, "Bad Name")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.md").write_text("---\ntitle: [unclosed\n---\nBody text.\n", encoding="utf-8")
    (broken / "ok.txt").write_text("Fine\n\nA fine article.", encoding="utf-8")
    report = ing.ingest(broken, "col2")
    assert report.added == 1 and len(report.failed) == 1 and "YAML" in report.failed[0][1]


def test_collection_refuses_another_embedder(tmp_path: Path, corpus_copy: Path) -> None:
    _ingestor(tmp_path).ingest(corpus_copy, "col1")
    other = _ingestor(tmp_path, embedder="hashing")
    with pytest.raises(EmbedderMismatch, match=r"(?i)minilm"):
        other.ingest(corpus_copy, "col1")
    with pytest.raises(EmbedderMismatch):
        Dossier(other.settings).ask("Why?", "col1")


def test_orphan_passages_from_a_crash_are_swept(tmp_path: Path, corpus_copy: Path) -> None:
    ing = _ingestor(tmp_path)
    ing.ingest(corpus_copy, "col1")
    docs, passages = _state(ing)
    (doc_id,) = docs
    # A run killed after deleting a record but before its passages leaves orphans.
    ing.store._get("col1__docs").delete(ids=[doc_id])  # type: ignore[attr-defined]
    (corpus_copy / SEED.name).unlink()
    report = ing.ingest(corpus_copy, "col1")
    assert report.chunks_deleted == len(passages)
    assert _state(ing) == ({}, {})


@pytest.mark.slow
def test_killed_ingest_leaves_a_queryable_index_and_rerun_completes(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(24):
        (folder / f"a{i:02d}.txt").write_text(
            f"Article {i}\n\nStory number {i} reports on event {i * 7} in city {i % 5}. "
            f"Officials said the number {i} matters. " * 3,
            encoding="utf-8",
        )
    env = {
        **os.environ,
        "DOSSIER_DATA_DIR": str(tmp_path / "index"),
        "DOSSIER_INGEST_GROUP_CHUNKS": "2",
        "CI": "1",
    }
    cmd = [sys.executable, "-m", "service.cli", "ingest", str(folder), "--collection", "col1", "-v"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    commits = 0
    assert proc.stderr is not None
    for line in proc.stderr:
        if "committed" in line:
            commits += 1
            if commits == 3:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    # Killed mid-run, the index still answers.
    partial = Dossier(make_settings(tmp_path))
    assert partial.search("Story number 1", "col1", 3)
    done_before = len(partial.store.documents("col1"))
    assert 3 <= done_before < 24

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{24 - done_before} added" in rerun.stdout

    # Same index as a clean run: no duplicates, nothing lost.
    clean = _ingestor(tmp_path / "clean")
    clean.ingest(folder, "col1")
    resumed = Dossier(make_settings(tmp_path))
    assert sorted(resumed.store.passage_refs("col1")) == sorted(clean.store.passage_refs("col1"))
    assert len(resumed.store.documents("col1")) == 24
    started = time.perf_counter()
    assert "0 added" in subprocess.run(cmd, env=env, capture_output=True, text=True).stdout
    assert time.perf_counter() - started < 60
