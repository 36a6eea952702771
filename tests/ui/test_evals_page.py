"""The Evals page reads what the evals runner really writes.

The reports come from a real (short) run of the seed suite with the trivial baseline
beside it, written by ``evals.reports.write_reports``, as ``dossier eval`` does.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dossier.engine import Dossier
from dossier.verify.offline import OfflineSupportScorer
from evals.loaders import load_seed
from evals.reports import write_reports
from evals.runner import SuiteResult, aggregate, load_thresholds, run_suite
from tests.ui.conftest import AppFactory
from ui.evals import latest_reports


@pytest.fixture(scope="module")
def seed_result(seed_engine: Dossier) -> SuiteResult:
    """A dozen seed questions, both kinds, so that refusal metrics are measured too. Whether
    this subset meets the seed thresholds is whatever it is; the page must say the same."""
    settings = seed_engine.settings
    suite = load_seed(settings)
    answerable = [q for q in suite.questions if q.answerable]
    unanswerable = [q for q in suite.questions if not q.answerable]
    suite = replace(suite, questions=answerable[:8] + unanswerable[:4], baseline=True)
    return run_suite(
        seed_engine,
        suite,
        scorer=OfflineSupportScorer(seed_engine.embedder, threshold=settings.support_threshold),
        thresholds=load_thresholds("seed"),
        progress=False,
    )


@pytest.fixture(scope="module")
def missed(seed_result: SuiteResult) -> SuiteResult:
    """The same answers gated just above what they scored: a run that misses a threshold."""
    measured = seed_result.metrics["key_fact_recall"].value
    assert measured is not None
    bounds = {"key_fact_recall": ("min", round(measured + 0.01, 3))}
    return replace(
        seed_result, suite="seed-strict", metrics=aggregate(seed_result.questions, bounds)
    )


@pytest.fixture(scope="module")
def ungated(seed_result: SuiteResult) -> SuiteResult:
    """The same answers with no thresholds: a run that passes."""
    return replace(seed_result, suite="seed-ungated", metrics=aggregate(seed_result.questions, {}))


@pytest.fixture(scope="module")
def reports_dir(
    seed_result: SuiteResult,
    missed: SuiteResult,
    ungated: SuiteResult,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    out = tmp_path_factory.mktemp("reports")
    for result in (seed_result, missed, ungated):
        write_reports(result, out)
    # The training scripts write their summaries into the same folder: not suite reports.
    (out / "train_answerer.json").write_text(json.dumps({"chosen": "linear", "rows": []}))
    return out


def test_reader_finds_every_metric_of_the_runners_reports(
    reports_dir: Path, seed_result: SuiteResult
) -> None:
    seed, strict, ungated = latest_reports(reports_dir)
    assert (seed.suite, strict.suite, ungated.suite) == ("seed", "seed-strict", "seed-ungated")
    assert seed.error is None and seed.passed is seed_result.passed
    assert seed.misses == seed_result.misses
    assert ungated.passed is True and ungated.status == "PASSED" and not ungated.misses
    assert (seed.answerer, seed.scorer, seed.top_k) == (
        seed_result.answerer,
        seed_result.scorer,
        seed_result.top_k,
    )
    by_name = {m.name: m for m in seed.metrics}
    system = {k for k in seed_result.metrics if not k.startswith("baseline_")}
    assert set(by_name) == system
    for name, r in seed_result.metrics.items():
        if name.startswith("baseline_"):
            base = by_name[name.removeprefix("baseline_")]
            assert base.baseline == r.value, name
            continue
        m = by_name[name]
        # JSON keeps a float's repr, so the numbers come back exactly.
        assert (m.value, m.low, m.high, m.n, m.bound, m.goal) == (
            r.value,
            r.low,
            r.high,
            r.n,
            r.bound,
            r.goal,
        ), name
        assert m.passed == (r.passed if r.bound is not None else None)
    assert by_name["key_fact_recall"].baseline is not None  # the baseline ran beside it
    assert by_name["refusal_recall"].value is not None  # unanswerable questions were asked
    assert len(seed.questions) == len(seed_result.questions)
    assert [q["qid"] for q in seed.questions] == [q.qid for q in seed_result.questions]
    assert [q["passed"] for q in seed.questions] == [q.passed for q in seed_result.questions]


def test_reader_reports_a_missed_threshold(reports_dir: Path, missed: SuiteResult) -> None:
    strict = latest_reports(reports_dir)[1]
    assert strict.passed is False and strict.status == "FAILED"
    assert strict.misses == missed.misses and len(strict.misses) == 1
    (kfr,) = [m for m in strict.metrics if m.name == "key_fact_recall"]
    assert kfr.status == "MISSED" and kfr.threshold.startswith("≥ ")


def test_reader_skips_other_json_and_flags_a_broken_report(tmp_path: Path) -> None:
    assert latest_reports(tmp_path / "missing") == []
    (tmp_path / "train_support.json").write_text(json.dumps({"rows": [1, 2]}))
    assert latest_reports(tmp_path) == []
    (tmp_path / "bbc.json").write_text('{"suite": "bbc", "metr')  # cut off mid-write
    (broken,) = latest_reports(tmp_path)
    assert broken.suite == "bbc" and broken.status == "unreadable"
    assert broken.error and "bbc.json" in broken.error


def frames_with(at: AppTest, column: str) -> list[pd.DataFrame]:
    frames = [d.value for d in at.dataframe]
    return [f for f in frames if column in f.columns]


def test_evals_page_shows_the_runners_reports(
    app: AppFactory, reports_dir: Path, tmp_path: Path, seed_result: SuiteResult
) -> None:
    at = app().run()
    at.radio(key="page").set_value("Evals").run()
    assert "No eval reports yet" in at.info[0].value and "seed.json" in at.info[0].value
    shutil.copytree(reports_dir, tmp_path / "reports")  # the app's DOSSIER_EVALS_REPORTS_DIR
    at.run()
    assert not at.exception and not at.info
    suites = frames_with(at, "suite")[0]
    metrics = [f.set_index("metric") for f in frames_with(at, "metric")]
    assert list(suites["suite"]) == ["seed", "seed-strict", "seed-ungated"]
    seed_status = "PASSED" if seed_result.passed else "FAILED"
    assert list(suites["status"]) == [seed_status, "FAILED", "PASSED"]
    assert list(suites["questions"]) == [len(seed_result.questions)] * 3
    table, strict, _ = metrics  # one per suite, in the overview's order
    kfr = seed_result.metrics["key_fact_recall"]
    assert table.loc["key_fact_recall", "value"] == pytest.approx(kfr.value)
    baseline = seed_result.metrics["baseline_key_fact_recall"].value
    assert table.loc["key_fact_recall", "baseline"] == pytest.approx(baseline)
    gated = {k: r for k, r in seed_result.metrics.items() if r.bound is not None}
    assert gated and all(
        table.loc[k, "status"] == ("ok" if r.passed else "MISSED") for k, r in gated.items()
    )
    assert "baseline_key_fact_recall" not in table.index
    assert strict.loc["key_fact_recall", "status"] == "MISSED"
    assert strict.loc["key_fact_recall", "threshold"].startswith("≥ ")
    assert any("Threshold missed: key_fact_recall" in e.value for e in at.error)
    questions = frames_with(at, "qid")[0]
    assert len(questions) == len(seed_result.questions)
    assert at.get("vega_lite_chart")
