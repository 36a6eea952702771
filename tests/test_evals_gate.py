"""The CI gate: the default answerer passes the seed suite, and answers made worse fail it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dossier.engine import Dossier
from dossier.settings import get_settings
from dossier.verify.offline import OfflineSupportScorer
from evals.degraded import eval_answerer
from evals.loaders import load_seed
from evals.reports import write_reports
from evals.runner import SuiteResult, load_thresholds, run_suite
from service.cli import app


def _run(engine: Dossier, answerer: str | None = None) -> SuiteResult:
    settings = engine.settings
    # The offline scorer, explicitly: an LLM endpoint in the environment must not change CI.
    scorer = OfflineSupportScorer(engine.embedder, threshold=settings.support_threshold)
    return run_suite(
        engine,
        load_seed(settings),
        answerer=eval_answerer(settings, answerer),
        scorer=scorer,
        thresholds=load_thresholds("seed"),
        progress=False,
    )


@pytest.fixture(scope="module")
def seed_result(seed_engine: Dossier) -> SuiteResult:
    return _run(seed_engine)


def test_default_answerer_passes_the_seed_gate(seed_result: SuiteResult) -> None:
    summary = {k: v.value for k, v in seed_result.metrics.items()}
    print(f"\nseed suite ({len(seed_result.questions)} questions): {summary}")
    assert len(seed_result.questions) >= 60  # 57 items, multi-turn ones ask two questions
    assert seed_result.passed, seed_result.misses
    assert {"key_fact_recall", "refusal_precision", "refusal_recall", "citation_precision"} <= set(
        seed_result.metrics
    )


def test_shifted_citations_fail_the_gate(seed_engine: Dossier) -> None:
    result = _run(seed_engine, "extractive-shifted-citations")
    assert not result.passed
    missed = " ".join(result.misses)
    assert "citation_precision" in missed and "citation_coverage" in missed
    # Only citations moved: the answers themselves are as good as before.
    assert "key_fact_recall" not in missed


def test_disabled_refusal_fails_the_gate(seed_engine: Dossier) -> None:
    result = _run(seed_engine, "extractive-no-refusal")
    assert not result.passed
    assert result.metrics["refusal_recall"].value == 0.0
    assert any(m.startswith("refusal_recall") for m in result.misses)
    answered = [q for q in result.questions if not q.answerable and not q.refused]
    assert answered and all(
        "answered a question the corpus does not answer" in q.failures for q in answered
    )


def test_reports_say_what_passed_and_failed(seed_result: SuiteResult, tmp_path: Path) -> None:
    paths = write_reports(seed_result, tmp_path)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "| key_fact_recall |" in md and "PASSED" in md
    assert "## Worst failures" in md
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert data["passed"] is True
    assert len(data["questions"]) == len(seed_result.questions)
    root = ET.parse(paths["junit"]).getroot()
    gate, questions = root.findall("testsuite")
    assert gate.get("failures") == "0"
    failed = sum(not q.passed for q in seed_result.questions)
    assert questions.get("failures") == str(failed)
    assert len(questions.findall("testcase")) == len(seed_result.questions)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("DOSSIER_DATA_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("DOSSIER_SUPPORT_SCORER", "offline")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_cli_exits_non_zero_and_names_the_missed_threshold(cli_env: Path) -> None:
    out = cli_env / "reports"
    result = CliRunner().invoke(
        app, ["eval", "--suite", "seed", "--answerer", "extractive-no-refusal", "--out", str(out)]
    )
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and "refusal_recall" in result.output
    assert (out / "seed.md").exists() and (out / "seed.junit.xml").exists()


def test_cli_rejects_an_unknown_answerer(cli_env: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "--suite", "seed", "--answerer", "oracle"])
    assert result.exit_code == 2
    assert "Unknown answerer" in result.output
