"""Per-question metrics and their aggregation with bootstrap confidence intervals.

Retrieval hit rate and MRR come from llama-index's retrieval metrics; what
Dossier adds is the notion of a gold passage: one whose character range holds a
gold span of a gold document, so a passage is judged by the evidence it holds,
not by an id fixed when the dataset was written.
"""

from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from llama_index.core.evaluation.retrieval.metrics import MRR, HitRate

from dossier.models import Passage
from dossier.text import sentence_spans

T = TypeVar("T")

CI_LEVEL = 0.95
BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 7


# -- answers -----------------------------------------------------------------------


def _fold(text: str) -> str:
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return " ".join(text.lower().split())


def contains_fact(answer: str, alternatives: Sequence[str]) -> bool:
    """Whether any alternative occurs in the answer as whole words, case-insensitively.

    Word boundaries matter: the key fact "US" must not match "use" or "focus".
    """
    folded = _fold(answer)
    for alt in alternatives:
        pattern = r"(?<!\w)" + re.escape(_fold(alt)) + r"(?!\w)"
        if re.search(pattern, folded):
            return True
    return False


def key_fact_recall(answer: str, facts: Sequence[Sequence[str]]) -> float:
    if not facts:
        return 1.0
    return sum(1 for alts in facts if contains_fact(answer, alts)) / len(facts)


def cited_key_fact_recall(
    answer: str,
    facts: Sequence[Sequence[str]],
    cited_docs: Sequence[str],
    gold_docs: Collection[str],
) -> float:
    """Key-fact recall, counted only when the answer cites one of the gold documents."""
    if not any(d in gold_docs for d in cited_docs):
        return 0.0
    return key_fact_recall(answer, facts)


def first_sentence(text: str) -> str:
    """The first sentence of a piece of answer text, as the reader meets it."""
    spans = sentence_spans(text)
    return text[slice(*spans[0])] if spans else text.strip()


def first_sentence_key_fact_cited(
    sentences: Sequence[tuple[str, Sequence[str]]],
    facts: Sequence[Sequence[str]],
    gold_docs: Collection[str],
) -> float:
    """Key-fact recall of the answer's first sentence alone, counted only when that sentence
    cites a gold document. ``sentences``: the answer's sentences, each with the documents it
    cites. A reader who stops after one sentence got what this measures; padding cannot
    raise it."""
    if not sentences:
        return 0.0
    text, cited = sentences[0]
    if not any(d in gold_docs for d in cited):
        return 0.0
    return key_fact_recall(first_sentence(text), facts)


def sentence_count(texts: Sequence[str]) -> int:
    """How many sentences the reader reads: an answer's sentences, split as written."""
    return sum(max(1, len(sentence_spans(t))) for t in texts if t.strip())


def squad_normalize(text: str) -> str:
    """SQuAD's official answer normalisation: lower, no punctuation, articles or extra spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    return float(any(squad_normalize(prediction) == squad_normalize(g) for g in golds))


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """Max token F1 against the references, as the official SQuAD script computes it."""
    best = 0.0
    pred = squad_normalize(prediction).split()
    for gold in golds:
        ref = squad_normalize(gold).split()
        if not pred or not ref:
            best = max(best, float(pred == ref))
            continue
        common = collections.Counter(pred) & collections.Counter(ref)
        same = sum(common.values())
        if same == 0:
            continue
        precision, recall = same / len(pred), same / len(ref)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


_MARKER = re.compile(r"\s*\[\d+\]")


def strip_markers(text: str) -> str:
    """An answer's text without its [n] citation markers."""
    return _MARKER.sub("", text).strip()


# -- retrieval ---------------------------------------------------------------------


def span_offsets(doc_text: str, span: str) -> list[tuple[int, int]]:
    """Every occurrence of a gold span in a document (case-sensitive first, then folded)."""
    found = [(m.start(), m.start() + len(span)) for m in re.finditer(re.escape(span), doc_text)]
    if not found:
        found = [
            (m.start(), m.start() + len(span))
            for m in re.finditer(re.escape(span), doc_text, flags=re.IGNORECASE)
        ]
    return found


def gold_passage_ids(
    passages: Sequence[Passage], spans_by_doc: dict[str, list[tuple[int, int]]]
) -> list[str]:
    """Passages whose character range holds a whole gold span of their document."""
    return [
        p.passage_id
        for p in passages
        if any(p.start <= s and e <= p.end for s, e in spans_by_doc.get(p.doc_id, []))
    ]


def retrieval_scores(
    expected_ids: Sequence[str], retrieved_ids: Sequence[str], ks: Sequence[int]
) -> dict[str, float]:
    """recall@k (a gold passage in the top k) for each k, and MRR, via llama-index's metrics."""
    out: dict[str, float] = {}
    if not expected_ids:
        # No passage holds the evidence (e.g. a span cut by chunking): nothing can be found.
        return {**{f"recall@{k}": 0.0 for k in ks}, "mrr": 0.0}
    for k in ks:
        out[f"recall@{k}"] = (
            HitRate()
            .compute(expected_ids=list(expected_ids), retrieved_ids=list(retrieved_ids[:k]))
            .score
        )
    out["mrr"] = (
        MRR().compute(expected_ids=list(expected_ids), retrieved_ids=list(retrieved_ids)).score
    )
    return out


# -- aggregation -------------------------------------------------------------------


@dataclass(frozen=True)
class Aggregate:
    value: float | None
    low: float | None
    high: float | None
    n: int


def bootstrap(
    rows: Sequence[T],
    statistic: Callable[[Sequence[T]], float | None],
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Aggregate:
    """A statistic over the rows with a percentile bootstrap interval (resampling questions)."""
    value = statistic(rows)
    if value is None or len(rows) < 2:
        return Aggregate(value, value, value, len(rows))
    rng = np.random.default_rng(seed)
    stats: list[float] = []
    for _ in range(samples):
        idx = rng.integers(0, len(rows), len(rows))
        s = statistic([rows[i] for i in idx])
        if s is not None and not math.isnan(s):
            stats.append(s)
    if not stats:
        return Aggregate(value, None, None, len(rows))
    alpha = (1 - CI_LEVEL) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return Aggregate(value, float(low), float(high), len(rows))


def mean_ci(values: Sequence[float]) -> Aggregate:
    """Mean with a bootstrap interval, vectorised (means are most of the metrics)."""
    if not values:
        return Aggregate(None, None, None, 0)
    arr = np.asarray(values, dtype=np.float64)
    value = float(arr.mean())
    if len(arr) < 2:
        return Aggregate(value, value, value, 1)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = arr[rng.integers(0, len(arr), (BOOTSTRAP_SAMPLES, len(arr)))].mean(axis=1)
    alpha = (1 - CI_LEVEL) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Aggregate(value, float(low), float(high), len(arr))


def refusal_precision(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    """Of the refusals, the share on unanswerable questions. Pairs are (answerable, refused)."""
    refused = [a for a, r in pairs if r]
    if not refused:
        return None
    return sum(1 for a in refused if not a) / len(refused)


def refusal_recall(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    """Of the unanswerable questions, the share refused."""
    unanswerable = [r for a, r in pairs if not a]
    if not unanswerable:
        return None
    return sum(1 for r in unanswerable if r) / len(unanswerable)
