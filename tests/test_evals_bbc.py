"""The CI gate on bbc-qa-dev's test split: the whole BBC corpus, questions nobody tuned on.

Slow: the corpus is embedded once (about 4 minutes on two cores) and ~55 questions are
asked. The broken answerers of ``evals/degraded.py`` must fail the same gate.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dossier.engine import Dossier
from dossier.support import OfflineSupportScorer
from evals.degraded import eval_answerer
from evals.loaders import load_bbc
from evals.runner import SuiteResult, load_thresholds, run_suite
from evals.splits import BBC_TEST_MIN
from tests.conftest import BBC, make_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not BBC.is_dir(), reason="needs ../shared/benchmarks/news-bbc"),
]


@pytest.fixture(scope="module")
def bbc_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dossier]:
    yield Dossier(make_settings(tmp_path_factory.mktemp("bbc")))


def _run(engine: Dossier, answerer: str | None = None) -> SuiteResult:
    settings = engine.settings
    return run_suite(
        engine,
        load_bbc(settings),
        answerer=eval_answerer(settings, answerer),
        scorer=OfflineSupportScorer(engine.embedder, threshold=settings.support_threshold),
        thresholds=load_thresholds("bbc"),
        progress=False,
    )


def test_bbc_test_split_meets_its_floors(bbc_engine: Dossier) -> None:
    result = _run(bbc_engine)
    summary = {k: round(v.value, 3) for k, v in result.metrics.items() if v.value is not None}
    print(
        f"\nbbc test split ({len(result.questions)} questions, {result.seconds:.0f} s): {summary}"
    )
    answerable = sum(q.answerable for q in result.questions)
    assert answerable >= BBC_TEST_MIN["answerable"]
    assert len(result.questions) - answerable >= BBC_TEST_MIN["unanswerable"]
    # The trivial baseline is measured in the same run, on the same retrieval.
    assert {"key_fact_recall_cited", "baseline_key_fact_recall_cited", "false_refusal"} <= set(
        result.metrics
    )
    assert result.passed, result.misses


@pytest.mark.parametrize(
    ("broken", "metric"),
    [
        ("extractive-shifted-citations", "key_fact_recall_cited"),
        ("extractive-no-refusal", "refusal_recall"),
    ],
)
def test_broken_answerers_fail_the_bbc_gate(bbc_engine: Dossier, broken: str, metric: str) -> None:
    result = _run(bbc_engine, broken)
    assert not result.passed
    assert metric in " ".join(result.misses)
