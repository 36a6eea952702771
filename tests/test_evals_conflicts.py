"""The CI gate on conflict detection (issue #20): the synthetic set's test split and the
hand-read natural pairs, built from bbc-qa-dev's train-list articles at run time.

The trivial baseline (flag any other-document value) must miss the same gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals import conflicts
from tests.conftest import BBC

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not BBC.is_dir(), reason="needs ../shared/benchmarks/news-bbc"),
]


def test_the_detector_passes_its_gate_and_the_baseline_does_not(tmp_path: Path) -> None:
    out = tmp_path / "conflicts.json"
    assert conflicts.main(["--gate", "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["misses"] == []
    rule, baseline = report["gate"]["rule"], report["gate"]["baseline"]
    assert rule["synthetic_recall"] >= 0.85 and rule["synthetic_false_flag_rate"] <= 0.02
    missed = conflicts.misses(baseline)
    assert any(m.startswith("synthetic_false_flag_rate") for m in missed), missed
    assert any(m.startswith("natural_false_flag_rate") for m in missed), missed
    # The natural pairs are all there, and each missed conflict is listed by name.
    assert report["natural"]["pairs"] == 361
    assert all("->" in line for line in report["natural"]["missed"])


def test_the_natural_pairs_still_match_the_corpus() -> None:
    import hashlib

    root = BBC
    for line in conflicts.NATURAL.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        for side, sha in (("a", "sha_a"), ("b", "sha_b")):
            article, start, end = row[side]
            text = conflicts.read_article(root / article)[start:end]
            assert hashlib.sha256(text.encode()).hexdigest()[:12] == row[sha], (row["pair"], side)
