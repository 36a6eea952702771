"""The BBC benchmark corpus (read from ../shared, never copied): duplicates and encodings."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from tests.conftest import BBC, make_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not BBC.is_dir(), reason="needs ../shared/benchmarks/news-bbc"),
]


def test_bbc_ingest_dedupes_and_decodes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from dossier.engine import Dossier

    # The dedupe and decode logic does not depend on the model; the fast fake
    # embedder keeps this suite to seconds (throughput is measured in benchmarks/).
    settings = make_settings(tmp_path, embedder="hashing")
    engine = Dossier(settings)
    ingestor = Ingestor(settings, engine.store, engine.embedder)
    with caplog.at_level(logging.WARNING):
        report = ingestor.ingest(BBC, "bbc")
    exact_pairs = [
        line.split("\t")[1].split()
        for line in (BBC.parent / "duplicates.tsv").read_text().splitlines()
        if line.startswith("exact_bytes")
    ]
    assert len(exact_pairs) == 98
    assert report.failed == []
    # Every byte-identical pair is caught; a few more differ only in case or spacing.
    reported = {frozenset(pair) for pair in report.duplicates}
    assert reported >= {frozenset(pair) for pair in exact_pairs}
    assert 98 <= len(report.duplicates) <= 110
    assert report.added == 2225 - len(report.duplicates)

    assert [r for r in caplog.records if "cp1252" in r.message and "sport/199.txt" in r.message]
    docs = {d.source_path: d for d in engine.documents("bbc")}
    assert "£15.8m" in engine.document(docs["sport/199.txt"].doc_id, "bbc").text
    assert docs["sport/199.txt"].tags == ("sport",)
    assert docs["sport/199.txt"].title == "Chelsea sack Mutu"

    again = ingestor.ingest(BBC, "bbc")
    assert (again.unchanged, again.chunks_embedded, again.removed) == (report.added, 0, 0)
    assert again.duplicates == report.duplicates
