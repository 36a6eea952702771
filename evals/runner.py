"""Run a suite: ingest its documents, ask every question, score answers and citations, gate.

The runner is the single place that turns an :class:`~dossier.models.Answer`
into numbers, so the CLI, the tests and a team's own CI all measure the same way.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from dossier.answer.base import Answerer
from dossier.answer.extractive import CosineAnswerer
from dossier.chat.condense import Message
from dossier.engine import Dossier, Retrieved
from dossier.models import Answer, Passage
from dossier.verify.registry import build_support_scorer
from dossier.verify.support import SupportScorer, SupportVerdict
from evals import metrics as m
from evals.loaders import REPO, EvalQuestion, Suite
from ingest.pipeline import Ingestor

log = logging.getLogger(__name__)

THRESHOLDS = REPO / "evals" / "thresholds.toml"


@dataclass(frozen=True)
class CitationCheck:
    number: int
    sentence: str
    passage_id: str
    title: str
    passage_excerpt: str
    supported: bool
    score: float
    reasons: tuple[str, ...]


@dataclass
class QuestionResult:
    qid: str
    question: str
    kind: str
    collection: str
    answerable: bool
    answer: str
    refused: bool
    refusal_reason: str | None
    citations: list[CitationCheck]
    retrieved: list[str]
    metrics: dict[str, float]
    failures: list[str]
    in_context: str | None = None
    history: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class MetricResult:
    name: str
    value: float | None
    low: float | None
    high: float | None
    n: int
    bound: tuple[str, float] | None = None  # ("min" | "max", threshold)
    goal: float | None = None  # where the product wants to be; reported, never gating

    @property
    def passed(self) -> bool:
        if self.bound is None:
            return True
        if self.value is None:
            return False  # a gated number that cannot be measured is a miss, not a pass
        kind, limit = self.bound
        return self.value >= limit if kind == "min" else self.value <= limit


@dataclass
class SuiteResult:
    suite: str
    answerer: str
    scorer: str
    top_k: int
    questions: list[QuestionResult]
    metrics: dict[str, MetricResult]
    seconds: float
    ingest: list[str] = field(default_factory=list)

    @property
    def misses(self) -> list[str]:
        out = []
        for r in self.metrics.values():
            if r.bound is not None and not r.passed:
                kind, limit = r.bound
                shown = "n/a" if r.value is None else f"{r.value:.3f}"
                op = "<" if kind == "min" else ">"
                out.append(f"{r.name} = {shown} {op} {limit:.3f} ({kind})")
        return out

    @property
    def passed(self) -> bool:
        return not self.misses

    def by_kind(self) -> dict[str, dict[str, float]]:
        """Each answer metric per question kind (factoid, why/how, conversation turns, ...),
        and how many questions of that kind were refused."""
        kinds: dict[str, list[QuestionResult]] = {}
        for q in self.questions:
            kinds.setdefault(q.kind, []).append(q)
        out: dict[str, dict[str, float]] = {}
        for kind, qs in sorted(kinds.items()):
            row: dict[str, float] = {"n": float(len(qs)), "refused": _mean(q.refused for q in qs)}
            for name in ANSWER_METRICS:
                values = [q.metrics[name] for q in qs if name in q.metrics]
                if values:
                    row[name] = _mean(values)
            out[kind] = row
        return out


# What a reader sees, reported per question kind beside the suite's totals.
ANSWER_METRICS = (
    "first_sentence_key_fact_cited",
    "baseline_first_sentence_key_fact_cited",
    "key_fact_recall_cited",
    "false_refusal",
    "sentences_per_answer",
)


def _mean(values: Iterable[float]) -> float:
    v = [float(x) for x in values]
    return round(sum(v) / len(v), 4) if v else 0.0


def _suite_table(suite: str, path: Path) -> dict[str, dict[str, float]]:
    if not path.exists():
        return {}
    table: dict[str, dict[str, float]] = tomllib.loads(path.read_text(encoding="utf-8")).get(
        suite, {}
    )
    return table


def load_goals(suite: str, path: Path = THRESHOLDS) -> dict[str, float]:
    """``{metric: value}`` from the suite's ``goal`` table: targets shown beside the numbers."""
    return {k: float(v) for k, v in _suite_table(suite, path).get("goal", {}).items()}


def load_thresholds(suite: str, path: Path = THRESHOLDS) -> dict[str, tuple[str, float]]:
    """``{metric: ("min" | "max", value)}`` from the suite's tables in a thresholds TOML."""
    data = _suite_table(suite, path)
    out: dict[str, tuple[str, float]] = {}
    for kind in ("min", "max"):
        for name, value in data.get(kind, {}).items():
            out[name] = (kind, float(value))
    return out


def progress_enabled() -> bool:
    """A bar for people at a terminal; CI logs stay clean."""
    return sys.stderr.isatty() and not os.environ.get("CI")


class _Gold:
    """Where a collection's gold spans live: passages by document and document texts."""

    def __init__(self, engine: Dossier, collection: str) -> None:
        self.engine = engine
        self.collection = collection
        self.passages = engine.store.all_passages(collection)
        self.doc_ids: dict[str, str] = {}
        for doc_id, info in engine.store.documents(collection).items():
            self.doc_ids[info.source_path] = doc_id
            for alias in info.duplicates:  # de-duplicated copies answer for the original
                self.doc_ids[alias] = doc_id
        self._texts: dict[str, str] = {}

    def text(self, doc_id: str) -> str:
        if doc_id not in self._texts:
            self._texts[doc_id] = self.engine.store.get_document(self.collection, doc_id).text
        return self._texts[doc_id]

    def doc_ids_of(self, q: EvalQuestion) -> set[str]:
        """Ids of the question's gold documents (a duplicate's copy answers for it too)."""
        return {self.doc_ids[d] for d in q.docs if d in self.doc_ids}

    def expected_ids(self, q: EvalQuestion) -> list[str]:
        if not q.docs:
            # No gold document named: any passage quoting a span is evidence.
            folded = [" ".join(s.lower().split()) for s in q.gold_spans]
            return [
                p.passage_id
                for p in self.passages
                if any(f in " ".join(p.text.lower().split()) for f in folded)
            ]
        spans: dict[str, list[tuple[int, int]]] = {}
        for doc in q.docs:
            doc_id = self.doc_ids.get(doc)
            if doc_id is None:
                log.warning("%s: gold document %s is not in %s", q.qid, doc, self.collection)
                continue
            for span in q.gold_spans:
                spans.setdefault(doc_id, []).extend(m.span_offsets(self.text(doc_id), span))
        return m.gold_passage_ids(self.passages, spans)


class Evaluator:
    def __init__(
        self,
        engine: Dossier,
        answerer: Answerer,
        scorer: SupportScorer,
        top_k: int | None = None,
        baseline: Answerer | None = None,
    ) -> None:
        self.engine = engine
        self.answerer = answerer
        # Asked on the same retrieval as the answerer, so the two differ only in answering.
        self.baseline = baseline
        self.scorer = scorer
        self.top_k = top_k or engine.settings.top_k
        self.ks = sorted({1, self.top_k})
        self._gold: dict[str, _Gold] = {}
        self._verdicts: dict[tuple[str, str], SupportVerdict] = {}
        # Conversations: the answer given to each turn, sent back as the assistant's
        # message when a later turn is asked (keyed by collection, earlier turns, turn).
        self._replies: dict[tuple[str, ...], str] = {}

    def verdict(self, sentence: str, passage: str) -> SupportVerdict:
        key = (sentence, passage)
        if key not in self._verdicts:
            self._verdicts[key] = self.scorer.score(sentence, passage)
        return self._verdicts[key]

    def gold(self, collection: str) -> _Gold:
        if collection not in self._gold:
            self._gold[collection] = _Gold(self.engine, collection)
        return self._gold[collection]

    @staticmethod
    def _cited_sentences(answer: Answer) -> list[tuple[str, list[str]]]:
        """The answer's sentences in order, each with the documents it cites."""
        if answer.refused:
            return []
        doc_of = {c.number: c.doc_id for c in answer.citations}
        return [(s.text, [doc_of[n] for n in s.citations if n in doc_of]) for s in answer.sentences]

    def _citations(self, answer: Answer) -> tuple[list[CitationCheck], dict[str, float], list[str]]:
        by_number = {c.number: c for c in answer.citations}
        checks: list[CitationCheck] = []
        failures: list[str] = []
        covered = 0
        for s in answer.sentences:
            sentence_ok = False
            if not s.citations:
                failures.append(f"sentence without a citation: {s.text[:100]!r}")
            for n in s.citations:
                c = by_number.get(n)
                if c is None:
                    failures.append(f"marker [{n}] points at no citation")
                    continue
                v = self.verdict(s.text, c.passage_text)
                checks.append(
                    CitationCheck(
                        n,
                        s.text,
                        c.passage_id,
                        c.title,
                        c.passage_text[:300],
                        v.supported,
                        v.score,
                        v.reasons,
                    )
                )
                sentence_ok = sentence_ok or v.supported
                if not v.supported:
                    failures.append(
                        f"citation [{n}] does not support {s.text[:80]!r}: {'; '.join(v.reasons)}"
                    )
            covered += sentence_ok
        scores: dict[str, float] = {}
        # Citations delivered that point at no retrieved passage (e.g. an LLM's [7] of 5).
        retrieved = {sp.passage.passage_id for sp in answer.passages}
        scores["dangling_citations"] = float(
            sum(1 for c in answer.citations if c.passage_id not in retrieved)
            + len({int(n) for n in re.findall(r"\[(\d+)\]", answer.text)} - set(by_number))
        )
        if answer.sentences and any(s.supported is not None for s in answer.sentences):
            # Shown by answerers that verify their sentences (the LLM's annotate policy).
            scores["unsupported_sentences"] = sum(
                s.supported is False for s in answer.sentences
            ) / len(answer.sentences)
        if answer.sentences:
            scores["citation_precision"] = (
                sum(c.supported for c in checks) / len(checks) if checks else 0.0
            )
            scores["citation_coverage"] = covered / len(answer.sentences)
            # Faithfulness: each claim of the answer must be supported by some cited passage.
            cited = list(dict.fromkeys(c.passage_text for c in answer.citations))
            claims = [c for s in answer.sentences for c in self.scorer.claims(s.text)]
            if claims:
                ok = sum(1 for c in claims if any(self.verdict(c, p).supported for p in cited))
                scores["faithfulness"] = ok / len(claims)
        return checks, scores, failures

    # -- conversations -------------------------------------------------------------
    def _messages(self, collection: str, history: Sequence[str], asked: str) -> list[Message]:
        """The conversation up to ``asked``, with Dossier's own answers as the replies."""
        out: list[Message] = []
        for i, earlier in enumerate(history):
            out.append(Message("user", earlier))
            out.append(Message("assistant", self._reply(collection, history[:i], earlier)))
        out.append(Message("user", asked))
        return out

    def _reply(self, collection: str, history: Sequence[str], asked: str) -> str:
        key = (collection, *history, asked)
        if key not in self._replies:  # an earlier turn not evaluated (e.g. --limit)
            messages = self._messages(collection, history, asked)
            self._replies[key] = self.engine.chat(
                messages, collection, self.top_k, self.answerer
            ).text
        return self._replies[key]

    def _retrieve(self, q: EvalQuestion) -> Retrieved:
        """A later conversation turn is asked as typed, after the earlier turns."""
        if q.history and q.in_context is not None:
            messages = self._messages(q.collection, q.history, q.in_context)
            return self.engine.chat_retrieve(messages, q.collection, self.top_k)
        return self.engine.retrieve(q.question, q.collection, self.top_k)

    def _turn_scores(
        self, q: EvalQuestion, answer: Answer, gold_docs: set[str]
    ) -> dict[str, float]:
        """Per-turn numbers of a conversation, beside the same turn asked two other ways:
        in its standalone form (the reference) and as typed with no history (the
        trivial baseline: what a system without conversations does)."""
        if not q.history or q.in_context is None:
            return {}
        role = turn_role(q)
        if role == "topic_switch":
            cited = {c.doc_id for c in answer.citations}
            return {
                "topic_switch_answered_from_new": float(
                    not answer.refused and bool(cited & gold_docs)
                )
            }
        out: dict[str, float] = {}
        expected = self.gold(q.collection).expected_ids(q) if role == "follow_up" else []
        for mode, asked in (("standalone_", q.question), ("as_typed_", q.in_context), ("", None)):
            other = (
                answer
                if asked is None
                else self.engine.ask(asked, q.collection, self.top_k, self.answerer)
            )
            if role == "unanswerable_follow_up":
                out[f"unanswerable_follow_up_{mode}refused"] = float(other.refused)
                continue
            text = "" if other.refused else m.strip_markers(other.text)
            ranked = [sp.passage.passage_id for sp in other.passages]
            hit = m.retrieval_scores(expected, ranked, [self.top_k])[f"recall@{self.top_k}"]
            out[f"follow_up_{mode}hit@{self.top_k}"] = hit
            out[f"follow_up_{mode}key_fact_recall"] = m.key_fact_recall(text, q.key_facts)
            out[f"follow_up_{mode}first_sentence_key_fact_cited"] = m.first_sentence_key_fact_cited(
                self._cited_sentences(other), q.key_facts, gold_docs
            )
        return out

    def evaluate(self, q: EvalQuestion) -> QuestionResult:
        r = self._retrieve(q)
        # As served: through the engine, so conflict detection (when on) runs too.
        answer = self.engine.answer(r, self.answerer)
        if q.in_context is not None:
            self._replies[(q.collection, *q.history, q.in_context)] = answer.text
        ranked: list[Passage] = [sp.passage for sp in answer.passages]
        if not ranked:
            ranked = [sp.passage for sp in self.engine.search(q.question, q.collection, self.top_k)]
        scores: dict[str, float] = {}
        failures: list[str] = []
        text = m.strip_markers(answer.text) if not answer.refused else ""
        if q.answerable and q.gold_spans:
            expected = self.gold(q.collection).expected_ids(q)
            scores.update(m.retrieval_scores(expected, [p.passage_id for p in ranked], self.ks))
        gold_docs = self.gold(q.collection).doc_ids_of(q) if q.docs else set()
        if q.answerable:
            scores["false_refusal"] = float(answer.refused)
            if answer.refused:
                failures.append(f"refused an answerable question ({answer.refusal_reason})")
            if q.key_facts:
                scores["key_fact_recall"] = m.key_fact_recall(text, q.key_facts)
                if gold_docs:
                    # The fact counts only where the answer cites the article that states it.
                    scores["key_fact_recall_cited"] = m.cited_key_fact_recall(
                        text, q.key_facts, [c.doc_id for c in answer.citations], gold_docs
                    )
                    scores["first_sentence_key_fact_cited"] = m.first_sentence_key_fact_cited(
                        self._cited_sentences(answer), q.key_facts, gold_docs
                    )
                if self.baseline is not None:
                    base = self.baseline.answer(r.question, r.passages, r.context)
                    base_text = "" if base.refused else m.strip_markers(base.text)
                    scores["baseline_key_fact_recall"] = m.key_fact_recall(base_text, q.key_facts)
                    if gold_docs:
                        scores["baseline_key_fact_recall_cited"] = m.cited_key_fact_recall(
                            base_text, q.key_facts, [c.doc_id for c in base.citations], gold_docs
                        )
                        scores["baseline_first_sentence_key_fact_cited"] = (
                            m.first_sentence_key_fact_cited(
                                self._cited_sentences(base), q.key_facts, gold_docs
                            )
                        )
                missing = [alts for alts in q.key_facts if not m.contains_fact(text, alts)]
                if missing and not answer.refused:
                    shown = "; ".join(" / ".join(a) for a in missing)
                    failures.append(f"missing key fact(s): {shown}")
            if q.prior_answers:
                # The answer carries the real-world fact that the documents do not state.
                ignored = any(m.contains_fact(text, [a]) for a in q.prior_answers) and not any(
                    m.contains_fact(text, alts) for alts in q.key_facts
                )
                scores["ignores_documents"] = float(ignored)
                if ignored:
                    failures.append("answer states a fact the documents contradict")
        elif not answer.refused:
            failures.append("answered a question the corpus does not answer")
        if q.squad_scored:
            golds = q.gold_answers if q.answerable else ("",)
            scores["exact_match"] = m.exact_match(text, golds)
            scores["f1"] = m.token_f1(text, golds)
            if q.answerable:
                scores["f1_answerable"] = scores["f1"]
        if not answer.refused:
            # Questions with no known conflict: a flag here is a false one (issue #20).
            scores["conflict_flagged"] = float(bool(answer.conflicts))
            scores["sentences_per_answer"] = float(
                m.sentence_count([s.text for s in answer.sentences] or [text])
            )
        scores["degraded"] = float(answer.degraded)
        checks: list[CitationCheck] = []
        if not answer.refused:
            checks, cite_scores, cite_failures = self._citations(answer)
            scores.update(cite_scores)
            failures.extend(cite_failures)
        scores.update(self._turn_scores(q, answer, gold_docs))
        if failures and q.answerable and scores.get(f"recall@{self.top_k}") == 0.0:
            failures.append(f"the gold evidence was not among the top {self.top_k} passages")
        return QuestionResult(
            qid=q.qid,
            question=q.question,
            kind=q.kind,
            collection=q.collection,
            answerable=q.answerable,
            answer=answer.text,
            refused=answer.refused,
            refusal_reason=answer.refusal_reason,
            citations=checks,
            retrieved=[f"{p.title} [{p.passage_id}]" for p in ranked],
            metrics=scores,
            failures=failures,
            in_context=q.in_context,
            history=q.history,
        )


def turn_role(q: EvalQuestion) -> str:
    """first, follow_up, topic_switch or unanswerable_follow_up."""
    if not q.history:
        return "first"
    if "topic_switch" in q.kind:
        return "topic_switch"
    return "follow_up" if q.answerable else "unanswerable_follow_up"


def derived(metrics: dict[str, MetricResult], top_k: int) -> dict[str, float]:
    """Follow-ups asked in context against the same turns asked standalone (issue #9)."""
    out: dict[str, float] = {}
    hit, ref = (
        metrics.get(f"follow_up_hit@{top_k}"),
        metrics.get(f"follow_up_standalone_hit@{top_k}"),
    )
    if hit and ref and hit.value is not None and ref.value:
        out["follow_up_hit_ratio"] = hit.value / ref.value
    kf, kref = (
        metrics.get("follow_up_key_fact_recall"),
        metrics.get("follow_up_standalone_key_fact_recall"),
    )
    if kf and kref and kf.value is not None and kref.value is not None:
        out["follow_up_key_fact_gap"] = kref.value - kf.value
    first, first_ref = (
        metrics.get("follow_up_first_sentence_key_fact_cited"),
        metrics.get("follow_up_standalone_first_sentence_key_fact_cited"),
    )
    if first and first_ref and first.value is not None and first_ref.value is not None:
        out["follow_up_first_sentence_gap"] = first_ref.value - first.value
    return out


def aggregate(
    results: Sequence[QuestionResult],
    bounds: dict[str, tuple[str, float]],
    goals: dict[str, float] | None = None,
) -> dict[str, MetricResult]:
    names: list[str] = list(dict.fromkeys(k for r in results for k in r.metrics))
    out: dict[str, MetricResult] = {}
    for name in names:
        agg = m.mean_ci([r.metrics[name] for r in results if name in r.metrics])
        out[name] = MetricResult(name, agg.value, agg.low, agg.high, agg.n, bounds.get(name))
    pairs = [(r.answerable, r.refused) for r in results]
    if any(not a for a, _ in pairs):
        for name, stat in (
            ("refusal_precision", m.refusal_precision),
            ("refusal_recall", m.refusal_recall),
        ):
            agg = m.bootstrap(pairs, stat)
            out[name] = MetricResult(name, agg.value, agg.low, agg.high, agg.n, bounds.get(name))
    out["pass_rate"] = _pass_rate(results, bounds)
    top_k = next((int(k.split("@")[1]) for k in out if k.startswith("follow_up_hit@")), 0)
    for name, value in derived(out, top_k).items():
        n = out[f"follow_up_hit@{top_k}"].n
        out[name] = MetricResult(name, value, None, None, n, bounds.get(name))
    for name, bound in bounds.items():
        if name not in out:  # gated but never measured: shown as a miss
            out[name] = MetricResult(name, None, None, None, 0, bound)
    for name, goal in (goals or {}).items():
        if name in out:
            r = out[name]
            out[name] = MetricResult(r.name, r.value, r.low, r.high, r.n, r.bound, goal)
    return out


def _pass_rate(
    results: Sequence[QuestionResult], bounds: dict[str, tuple[str, float]]
) -> MetricResult:
    agg = m.mean_ci([float(r.passed) for r in results])
    return MetricResult("pass_rate", agg.value, agg.low, agg.high, agg.n, bounds.get("pass_rate"))


def ingest_suite(engine: Dossier, suite: Suite) -> list[str]:
    """Ingest the suite's documents; unchanged folders cost a hash check, not embeddings."""
    out = []
    ingestor = Ingestor(engine.settings, engine.store, engine.embedder)
    for collection, folder in suite.collections.items():
        out.append(ingestor.ingest(folder, collection).summary())
    return out


def run_suite(
    engine: Dossier,
    suite: Suite,
    *,
    answerer: Answerer | None = None,
    scorer: SupportScorer | None = None,
    limit: int | None = None,
    thresholds: dict[str, tuple[str, float]] | None = None,
    goals: dict[str, float] | None = None,
    progress: bool | None = None,
) -> SuiteResult:
    started = time.perf_counter()
    ingested = ingest_suite(engine, suite)
    if suite.answerable_thresholds:
        own = {**suite.answerable_thresholds, **engine.settings.answerable_thresholds}
        engine.settings = engine.settings.model_copy(update={"answerable_thresholds": own})
    answerer = answerer or engine.answerer
    scorer = scorer or build_support_scorer(engine.settings, engine.embedder)
    evaluator = Evaluator(
        engine, answerer, scorer, baseline=CosineAnswerer() if suite.baseline else None
    )
    questions: Iterable[EvalQuestion] = suite.questions[:limit] if limit else suite.questions
    questions = list(questions)
    show = progress_enabled() if progress is None else progress
    results = [
        evaluator.evaluate(q)
        for q in tqdm(questions, desc=f"eval {suite.name}", unit="q", disable=not show)
    ]
    bounds = load_thresholds(suite.name) if thresholds is None else thresholds
    return SuiteResult(
        suite=suite.name,
        answerer=answerer.name,
        scorer=scorer.name,
        top_k=evaluator.top_k,
        questions=results,
        metrics=aggregate(results, bounds, load_goals(suite.name) if goals is None else goals),
        seconds=time.perf_counter() - started,
        ingest=ingested,
    )
