"""Metrics, loaders, thresholds and reports of the evals, on small hand-made inputs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dossier.errors import InvalidInput
from dossier.models import Passage
from evals import metrics as m
from evals.loaders import (
    DATASETS,
    load_rgb,
    load_seed,
    load_squad2,
    parse_items,
    read_jsonl,
    shared_dir,
)
from evals.reports import junit, markdown
from evals.runner import (
    MetricResult,
    QuestionResult,
    SuiteResult,
    aggregate,
    load_goals,
    load_thresholds,
)
from ingest.cleaning import Cleaner
from ingest.loaders import load
from tests.conftest import CORPUS, SEED_COLLECTION, make_settings

SEED_DOC = CORPUS / SEED_COLLECTION / "2022-09-07-albania-cuts-ties-to-iran.md"


def test_key_facts_match_whole_words_and_alternatives() -> None:
    assert m.contains_fact("The US condemned it.", ["US", "United States"])
    assert not m.contains_fact("They focus on use of tools.", ["US"])
    assert m.contains_fact("within twenty-four hours", ["24 hours", "twenty-four hours"])
    assert m.contains_fact("Rama’s government", ["Rama's government"])  # curly quotes fold
    assert m.key_fact_recall("ports and water", [["ports"], ["water"], ["dating websites"]]) == (
        pytest.approx(2 / 3)
    )
    assert m.key_fact_recall("anything", []) == 1.0


def test_squad_exact_match_and_f1_follow_the_official_definitions() -> None:
    assert m.exact_match("The Normans.", ["Normans"]) == 1.0
    assert m.exact_match("Normans in France", ["Normans"]) == 0.0
    assert m.token_f1("in the 10th century", ["10th century"]) == pytest.approx(0.8)
    assert m.token_f1("", [""]) == 1.0  # an empty answer to an unanswerable question
    assert m.token_f1("something", [""]) == 0.0
    assert m.strip_markers("A sentence. [1] Another. [2]") == "A sentence. Another."


def _passage(pid: str, doc: str, start: int, end: int) -> Passage:
    return Passage(
        passage_id=pid, doc_id=doc, text="x" * (end - start), start=start, end=end, title="t"
    )


def test_gold_passages_are_those_holding_a_whole_span() -> None:
    passages = [
        _passage("p1", "d", 0, 100),
        _passage("p2", "d", 80, 200),
        _passage("q", "e", 0, 50),
    ]
    assert m.gold_passage_ids(passages, {"d": [(90, 95)]}) == ["p1", "p2"]
    assert m.gold_passage_ids(passages, {"d": [(90, 150)]}) == ["p2"]
    assert m.gold_passage_ids(passages, {"d": [(10, 20)], "e": [(10, 20)]}) == ["p1", "q"]
    assert m.span_offsets("a b A b", "A b") == [(4, 7)]
    assert m.span_offsets("a b", "A B") == [(0, 3)]  # folded when no exact match


def test_retrieval_scores() -> None:
    scores = m.retrieval_scores(["b"], ["a", "b", "c"], [1, 5])
    assert scores == {"recall@1": 0.0, "recall@5": 1.0, "mrr": 0.5}
    assert m.retrieval_scores([], ["a"], [1]) == {"recall@1": 0.0, "mrr": 0.0}


def test_confidence_intervals_bracket_the_value_and_are_reproducible() -> None:
    agg = m.mean_ci([1.0, 0.0, 1.0, 1.0] * 10)
    assert agg.value == pytest.approx(0.75)
    assert agg.low is not None and agg.high is not None
    assert agg.low < 0.75 < agg.high
    assert m.mean_ci([1.0, 0.0, 1.0, 1.0] * 10) == agg
    assert m.mean_ci([]).value is None


def test_refusal_precision_and_recall() -> None:
    # (answerable, refused)
    pairs = [(False, True), (False, True), (False, False), (True, True), (True, False)]
    assert m.refusal_precision(pairs) == pytest.approx(2 / 3)
    assert m.refusal_recall(pairs) == pytest.approx(2 / 3)
    assert m.refusal_precision([(True, False)]) is None  # nothing refused: undefined
    agg = m.bootstrap(pairs, m.refusal_recall)
    assert agg.value == pytest.approx(2 / 3) and agg.n == 5


def test_seed_golden_set_is_complete_and_grounded(tmp_path: Path) -> None:
    rows = read_jsonl(DATASETS / "seed.jsonl")
    assert len(rows) >= 40
    types = {r["type"] for r in rows}
    assert types == {"answerable", "unanswerable", "multi_turn"}
    assert {r.get("unanswerable_kind") for r in rows if r["type"] == "unanswerable"} == {
        "on_topic",
        "off_topic",
    }
    text = Cleaner(make_settings(tmp_path).boilerplate_patterns).clean(load(SEED_DOC).text)
    questions = load_seed(make_settings(tmp_path)).questions
    for q in questions:
        for span in q.gold_spans:
            assert span in text, (q.qid, span)
        if q.answerable:
            assert q.key_facts and q.gold_spans, q.qid
    second_turns = [q for q in questions if q.history]
    assert len(second_turns) >= 5
    assert all(q.in_context and q.in_context != q.question for q in second_turns)


def test_parse_items_rejects_unknown_types() -> None:
    with pytest.raises(InvalidInput, match="unknown item type"):
        parse_items([{"id": "x", "type": "essay", "question": "?"}], "c")
    with pytest.raises(InvalidInput, match="empty key fact"):
        parse_items([{"question": "q?", "key_facts": [[""]]}], "c")


def test_squad_loader_reads_shared_in_a_fixed_order(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    whole = load_squad2(settings, split=None)
    assert len(whole.questions) == 2828
    assert sum(q.answerable for q in whole.questions) == 1299
    # The gate asks only the test split's articles (evals/splits.py); all are ingested.
    suite = load_squad2(settings)
    parts = [load_squad2(settings, split=s).questions for s in ("train", "validation")]
    assert len(suite.questions) + sum(len(p) for p in parts) == 2828
    articles = [{q.docs[0].split("/")[0] for q in qs} for qs in (suite.questions, *parts)]
    assert sum(len(a) for a in articles) == len(set().union(*articles)) == 8  # disjoint
    again = load_squad2(settings)
    assert [q.qid for q in again.questions[:300]] == [q.qid for q in suite.questions[:300]]
    folder = suite.collections["eval-squad2"]
    assert folder.is_relative_to(settings.data_dir)  # never written into the repository
    assert len(list(folder.rglob("*.txt"))) == 301
    q = next(q for q in suite.questions if q.answerable)
    assert all(span in (folder / q.docs[0]).read_text() for span in q.gold_spans)


def test_rgb_loader_builds_a_counterfactual_and_a_noise_collection(tmp_path: Path) -> None:
    suite = load_rgb(make_settings(tmp_path))
    assert len(suite.questions) == 200
    fact, noise = suite.questions[0], suite.questions[1]
    assert fact.collection == "eval-rgb-fact" and fact.answerable
    assert noise.collection == "eval-rgb-noise" and not noise.answerable
    # Grounded means stating what the documents say: the planted (fake) answer.
    folder = suite.collections["eval-rgb-fact"]
    assert any(fact.key_facts[0][0] in (folder / d).read_text() for d in fact.docs)
    assert fact.prior_answers and fact.prior_answers[0] != fact.key_facts[0][0]


def test_shared_dir_defaults_beside_the_repo_and_can_be_overridden(tmp_path: Path) -> None:
    assert shared_dir(make_settings(tmp_path)).name == "shared"
    assert shared_dir(make_settings(tmp_path, shared_dir=tmp_path)) == tmp_path


def test_thresholds_and_goals_load_per_suite(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text("[s.min]\nf1 = 0.5\n[s.max]\nignores_documents = 0.1\n[s.goal]\nf1 = 0.9\n")
    assert load_thresholds("s", path) == {"f1": ("min", 0.5), "ignores_documents": ("max", 0.1)}
    assert load_goals("s", path) == {"f1": 0.9}
    assert load_thresholds("other", path) == {}
    assert load_thresholds("seed")  # the checked-in file gates the seed suite


def _q(qid: str, answerable: bool, refused: bool, failures: list[str]) -> QuestionResult:
    return QuestionResult(
        qid=qid,
        question=f"{qid}?",
        kind="k",
        collection="c",
        answerable=answerable,
        answer="A. [1]",
        refused=refused,
        refusal_reason=None,
        citations=[],
        retrieved=[],
        metrics={"key_fact_recall": 0.0 if failures else 1.0},
        failures=failures,
    )


def test_gate_misses_low_and_unmeasurable_metrics_and_reports_them() -> None:
    results = [_q("a", True, False, []), _q("b", True, False, ["missing key fact(s): X"])]
    metrics = aggregate(results, {"key_fact_recall": ("min", 0.9), "refusal_recall": ("min", 0.5)})
    assert not metrics["key_fact_recall"].passed
    # No unanswerable question: refusal recall cannot be measured, which is a miss.
    assert metrics["refusal_recall"].value is None and not metrics["refusal_recall"].passed
    assert MetricResult("x", 0.2, None, None, 1, ("max", 0.1)).passed is False
    result = SuiteResult("s", "a", "offline", 5, results, metrics, 1.0)
    assert len(result.misses) == 2 and not result.passed
    md = markdown(result)
    assert "FAILED" in md and "missing key fact(s): X" in md and "### b" in md
    root = junit(result)
    gate = root.find("testsuite")
    assert gate is not None and gate.get("failures") == "2"
    assert ET.tostring(root).count(b"<failure") == 3  # two thresholds, one question


def test_first_sentence_metric_reads_only_the_first_sentence_and_its_citation() -> None:
    facts = [["2014"]]
    gold = {"doc-a"}
    lead = ("Albania agreed in 2014 to shelter them.", ["doc-a"])
    padded = ("Background first. Albania agreed in 2014 to shelter them.", ["doc-a"])
    assert m.first_sentence_key_fact_cited([lead], facts, gold) == 1.0
    # The fact in the answer's second sentence does not count: padding cannot raise it.
    assert m.first_sentence_key_fact_cited([padded], facts, gold) == 0.0
    assert m.first_sentence_key_fact_cited([("Background.", ["doc-a"]), lead], facts, gold) == 0.0
    # The right fact citing another article does not count either.
    assert m.first_sentence_key_fact_cited([(lead[0], ["doc-b"])], facts, gold) == 0.0
    assert m.first_sentence_key_fact_cited([], facts, gold) == 0.0


def test_sentence_count_counts_what_the_reader_reads() -> None:
    assert m.sentence_count(["One. Two.", "Three."]) == 3
    assert m.sentence_count(["Rama spoke; he said Iran was behind it."]) == 1
    assert m.sentence_count(["", "  "]) == 0
