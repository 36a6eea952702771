"""The CI gate on bbc-qa-dev's test split: the whole BBC corpus, questions nobody tuned on.

Slow: the corpus is embedded once (about 4 minutes on two cores) and ~55 questions are
asked, then the test conversations (bbc-chat, 46 turns). The broken answerers of
``evals/degraded.py`` must fail the same gate, and so must a chat that forgets the history.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dossier.engine import Dossier
from dossier.verify.offline import OfflineSupportScorer
from evals.degraded import eval_answerer
from evals.loaders import load_bbc, load_bbc_chat
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


def _run(engine: Dossier, answerer: str | None = None, suite: str = "bbc") -> SuiteResult:
    settings = engine.settings
    return run_suite(
        engine,
        load_bbc_chat(settings) if suite == "bbc-chat" else load_bbc(settings),
        answerer=eval_answerer(settings, answerer),
        scorer=OfflineSupportScorer(engine.embedder, threshold=settings.support_threshold),
        thresholds=load_thresholds(suite),
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


def test_bbc_chat_test_split_meets_its_floors(bbc_engine: Dossier) -> None:
    result = _run(bbc_engine, suite="bbc-chat")
    summary = {k: round(v.value, 3) for k, v in result.metrics.items() if v.value is not None}
    print(f"\nbbc-chat test split ({len(result.questions)} turns): {summary}")
    # Each follow-up is also asked standalone (the reference) and as typed without the
    # history (the trivial baseline), in the same run.
    assert {"follow_up_standalone_hit@5", "follow_up_as_typed_hit@5"} <= set(result.metrics)
    assert result.passed, result.misses


def test_a_chat_that_forgets_the_history_fails_the_chat_gate(bbc_engine: Dossier) -> None:
    forgetful = Dossier(
        bbc_engine.settings.model_copy(update={"chat_max_turns": 0}),
        store=bbc_engine.store,
        embedder=bbc_engine.embedder,
    )
    result = _run(forgetful, suite="bbc-chat")
    assert not result.passed
    assert "follow_up_hit@5" in " ".join(result.misses)
