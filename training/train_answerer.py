"""Fit the answer model (sentence scorer + answerability) and report it beside baselines.

    python -m training.train_answerer            # fit, choose, report, write the artefact

Reproducible: fixed seed, fixed splits (``evals/splits.py``, by article, chosen before
any result was seen), deterministic optimiser (L-BFGS from a seeded start).

Data (``train`` is fit on, ``validation`` chooses, ``test`` is only reported):

===========================  =====================  =====================  ============
dataset                       train                  validation             test
===========================  =====================  =====================  ============
bbc-train (ours, see          all                    -                      -
``datasets/bbc_train``)
bbc-qa-dev questions          -                      half the articles      other half
bbc-qa-dev conversations      -                      their split's turns    -
seed golden set (ours)        -                      all                    -
SQuAD 2.0 half A              4 articles             2 articles             2 articles
===========================  =====================  =====================  ============

Every question is retrieved as the service would (hybrid retrieval, ``top_k``
passages), its candidates featurised by :mod:`dossier.answer.selection`, and labelled: a
candidate is positive when it overlaps the gold sentence (bbc) or holds a gold answer
(SQuAD) in the gold document. Options compared on validation: the linear listwise
scorer and a one-hidden-layer one, each trained on in-domain data only or on
in-domain + SQuAD. The answerability model's options (class weights balanced per
domain or not, with or without SQuAD, two L2 values) are chosen by their ROC AUC on news
questions it was not fit on: out-of-fold predictions over our training questions (5 folds
by article) pooled with bbc-qa-dev's validation half. Its threshold is the highest one
whose false-refusal rate on validation answerable questions stays within
``--max-false-refusal``, chosen per domain: the news one is the model's default, the
SQuAD one is the calibration its collection uses (``DOSSIER_ANSWERABLE_THRESHOLDS``).

Prints a table (baseline cosine / old rules / model; train, validation, test; per
dataset) and writes it as JSON next to the artefact's report.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dossier.answer.extractive import RulesAnswerer
from dossier.answer.model import DEFAULT_PATH, AnswerModel, compose, softmax
from dossier.answer.selection import (
    ANSWERABILITY_FEATURES,
    FEATURES,
    TEXT_FEATURES,
    answerability_features,
    candidates,
    featurize,
)
from dossier.artifacts import Standardized
from dossier.chat.condense import Message
from dossier.engine import Dossier
from dossier.settings import Settings
from evals import metrics as m
from evals.loaders import (
    BBC_COLLECTION,
    REPO,
    EvalQuestion,
    bbc_dev_rows,
    load_bbc,
    load_bbc_chat,
    load_seed,
    load_squad2,
    read_jsonl,
)
from evals.runner import ingest_suite
from evals.splits import article_of, bbc_dev_split
from training.datasets import BBC_TRAIN_FILE, bbc_train_rows

log = logging.getLogger("training.train_answerer")

SEED = 20261126
# SQuAD questions featurised per split: enough to fit and choose, and the whole gate sample
# (evals.loaders.SQUAD_GATE_SAMPLE) on test. Sentence embedding on two cores is the cost.
SQUAD_SAMPLE = {"train": 500, "validation": 300, "test": 300}
# Features the scorer may not use. Our training questions were written to ask about
# sentences across the whole article ("not always the first ones"), so where a sentence sits
# would learn the writers' spread, not what readers ask: the lead, which states an
# article's main point, would be ranked down.
UNUSED_FEATURES = ("position", "lead")
# The chat calibration's false-refusal target, as a share of --max-false-refusal.
CHAT_FALSE_REFUSAL_SHARE = 0.5
REPORT = REPO / "training" / "reports" / "train_answerer.json"


@dataclass
class Sample:
    """One question, retrieved and featurised, with what each candidate holds."""

    qid: str
    dataset: str
    split: str
    question: str
    answerable: bool
    X: np.ndarray  # candidates x FEATURES
    positive: np.ndarray  # candidate overlaps the gold sentence in the gold document
    gold_doc: np.ndarray  # candidate is from the gold document
    facts: np.ndarray  # candidates x key facts: the candidate holds (an alternative of) it
    rules_refused: bool
    rules_fact_cited: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RawQuestion:
    qid: str
    dataset: str
    split: str
    question: str
    collection: str
    answerable: bool
    docs: tuple[str, ...] = ()  # source paths of gold documents
    # A conversation's turn: the user's earlier messages; ``question`` is then asked after
    # them, condensed as the service would.
    history: tuple[str, ...] = ()
    gold_span: str | None = None  # bbc: the gold sentence
    answers: tuple[str, ...] = ()  # squad: gold answer strings
    key_facts: tuple[tuple[str, ...], ...] = ()


def raw_questions(settings: Settings) -> list[RawQuestion]:
    out: list[RawQuestion] = []
    for row in bbc_train_rows(settings):
        out.append(_bbc(row, "bbc-train", "train"))
    dev = bbc_dev_rows(settings)
    split = bbc_dev_split(dev)
    for row in dev:
        out.append(_bbc(row, "bbc-dev", split[article_of(row)]))
    # The seed golden set (our first dossier: one article, short questions) is a second
    # news validation set: a threshold must hold on a one-article collection too.
    out.extend(_asked(q, "seed", "validation") for q in load_seed(settings).questions)
    # Conversations are how people use Dossier: each turn of the validation conversations,
    # condensed after the user's earlier turns as the service does, is a third news set.
    out.extend(
        _asked(q, "bbc-chat", "validation", in_conversation=True)
        for q in load_bbc_chat(settings, "validation").questions
    )
    suite = load_squad2(settings, split=None)
    for split_name in ("train", "validation", "test"):
        # Questions come in the suite's seeded order, so a prefix is a fixed random sample.
        asked = {
            q.qid
            for q in load_squad2(settings, split=split_name).questions[: SQUAD_SAMPLE[split_name]]
        }
        for q in suite.questions:
            if q.qid in asked:
                out.append(_asked(q, "squad2", split_name))
    return out


def _asked(
    q: EvalQuestion, dataset: str, split: str, *, in_conversation: bool = False
) -> RawQuestion:
    """An eval suite's question; ``in_conversation``: as typed after the turns before it
    (else its standalone form). The gold answers (SQuAD), else the gold spans, are the
    evidence."""
    return RawQuestion(
        qid=q.qid,
        dataset=dataset,
        split=split,
        question=(q.in_context or q.question) if in_conversation else q.question,
        collection=q.collection,
        answerable=q.answerable,
        docs=q.docs,
        answers=(q.gold_answers or q.gold_spans) if q.answerable else (),
        key_facts=q.key_facts,
        history=q.history if in_conversation else (),
    )


def _bbc(row: dict[str, Any], dataset: str, split: str) -> RawQuestion:
    answerable = row.get("type", "answerable") == "answerable"
    facts = tuple(tuple(str(a) for a in alts) for alts in row.get("key_facts") or ())
    return RawQuestion(
        qid=str(row["id"]),
        dataset=dataset,
        split=split,
        question=str(row["question"]),
        collection=BBC_COLLECTION,
        answerable=answerable,
        docs=(str(row["doc"]),) if answerable else (),
        gold_span=str(row["gold_span"]) if answerable else None,
        key_facts=facts,
    )


def featurise(engine: Dossier, questions: Sequence[RawQuestion]) -> list[Sample]:
    embed = engine._embed_texts
    rules = RulesAnswerer()
    doc_ids: dict[str, dict[str, str]] = {}
    texts: dict[tuple[str, str], str] = {}
    samples: list[Sample] = []
    started = time.perf_counter()
    for n, q in enumerate(questions, 1):
        if q.collection not in doc_ids:
            doc_ids[q.collection] = source_ids(engine, q.collection)
        r = retrieve_as_asked(engine, q)
        # What the answerer reads: in a conversation, the condensed question.
        question = r.question
        cands = candidates(r.passages)
        scored = featurize(question, r.context.question_vector, cands, r.context.idf, embed)
        gold_ids, gold_doc, positive, facts = gold_labels(
            engine, q, cands, doc_ids[q.collection], texts
        )
        old = rules.answer(question, r.passages, r.context)
        old_text = m.strip_markers(old.text)
        cited = any(c.doc_id in gold_ids for c in old.citations)
        samples.append(
            Sample(
                qid=q.qid,
                dataset=q.dataset,
                split=q.split,
                question=question,
                answerable=q.answerable,
                X=scored.X,
                positive=positive,
                gold_doc=gold_doc,
                facts=facts,
                rules_refused=old.refused,
                rules_fact_cited=(
                    m.key_fact_recall(old_text, q.key_facts) if cited and not old.refused else 0.0
                ),
            )
        )
        # Answerability features need the scorer's logits; keep what they need.
        samples[-1].extra["scored"] = _light(scored)
        samples[-1].extra["idf"] = {t: r.context.idf(t) for t in scored.question_terms}
        if n % 200 == 0:
            log.info("featurised %d/%d (%.0f s)", n, len(questions), time.perf_counter() - started)
    return samples


def source_ids(engine: Dossier, collection: str) -> dict[str, str]:
    """Source path (and each duplicate's path) -> doc id, for one collection."""
    ids: dict[str, str] = {}
    for doc_id, info in engine.store.documents(collection).items():
        ids[info.source_path] = doc_id
        for alias in info.duplicates:
            ids[alias] = doc_id
    return ids


def retrieve_as_asked(engine: Dossier, q: RawQuestion) -> Any:
    """Retrieve as the service would: a conversation's turn condensed after the turns before."""
    if q.history:
        messages = [Message("user", t) for t in (*q.history, q.question)]
        return engine.chat_retrieve(messages, q.collection)
    return engine.retrieve(q.question, q.collection)


def gold_labels(
    engine: Dossier,
    q: RawQuestion,
    cands: Sequence[Any],
    doc_ids: dict[str, str],
    texts: dict[tuple[str, str], str],
) -> tuple[set[str], np.ndarray, np.ndarray, np.ndarray]:
    """(gold doc ids, candidate is from a gold document, overlaps the gold sentence (bbc) or
    holds a gold answer (squad) in it, candidates x key facts held). ``texts`` caches the
    gold documents' text across questions."""
    gold_ids = {doc_ids[d] for d in q.docs if d in doc_ids}
    spans: list[tuple[int, int]] = []
    for doc_id in gold_ids:
        key = (q.collection, doc_id)
        if key not in texts:
            texts[key] = engine.store.get_document(q.collection, doc_id).text
        for span in [q.gold_span] if q.gold_span else q.answers:
            spans.extend(m.span_offsets(texts[key], span))
    gold_doc = np.array([c.doc_id in gold_ids for c in cands], dtype=bool)
    positive = np.array(
        [
            g and any(c.start < e and s < c.end for s, e in spans)
            for c, g in zip(cands, gold_doc, strict=True)
        ],
        dtype=bool,
    )
    facts = np.array(
        [[m.contains_fact(c.text, alts) for alts in q.key_facts] for c in cands], dtype=bool
    ).reshape(len(cands), len(q.key_facts))
    return gold_ids, gold_doc, positive, facts


def _light(scored: Any) -> Any:
    # Candidates hold passages; the answerability features need only terms and titles.
    from dossier.answer.selection import Scored

    light = [
        type(c)(
            passage=c.passage,
            rank=c.rank,
            start=c.start,
            end=c.end,
            text=c.text,
            terms=c.terms,
        )
        for c in scored.candidates
    ]
    return Scored(light, scored.X, scored.question_terms, scored.sentence_cos)


# -- fitting -------------------------------------------------------------------------


def _standardize(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    std[std < 1e-6] = 1.0
    return mean, std


def fit_listwise(
    samples: Sequence[Sample], hidden: int, l2: float, weights: Sequence[float] | None = None
) -> Standardized:
    """Softmax over each question's candidates; the gold candidates' mass is maximised."""
    from scipy.optimize import minimize

    groups = [s for s in samples if s.positive.any() and len(s.X) > 1]
    w_q = np.ones(len(groups)) if weights is None else np.asarray(weights, dtype=np.float64)
    unused = [FEATURES.index(f) for f in UNUSED_FEATURES]
    allX = np.concatenate([s.X for s in groups]).astype(np.float64)
    mean, std = _standardize(allX)
    Z = [(s.X.astype(np.float64) - mean) / std for s in groups]
    for z in Z:
        z[:, unused] = 0.0  # no signal to fit, and zeroed weights below
    P = [s.positive for s in groups]
    d = allX.shape[1]
    rng = np.random.default_rng(SEED)
    shapes: list[tuple[int, ...]] = [(d, hidden), (hidden,), (hidden,), ()] if hidden else [(d,)]
    sizes = [int(np.prod(s)) for s in shapes]

    def unpack(theta: np.ndarray) -> list[np.ndarray]:
        out, i = [], 0
        for shape, size in zip(shapes, sizes, strict=True):
            out.append(theta[i : i + size].reshape(shape))
            i += size
        return out

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = unpack(theta)
        total = 0.0
        grads = [np.zeros_like(p) for p in params]
        for z, pos, wq in zip(Z, P, w_q, strict=True):
            if hidden:
                W1, b1, w2, _ = params
                h = np.tanh(z @ W1 + b1)
                logits = h @ w2
            else:
                (w,) = params
                logits = z @ w
            mx = logits.max()
            e = np.exp(logits - mx)
            p = e / e.sum()
            gold = p[pos].sum()
            total -= wq * np.log(max(gold, 1e-12))
            # d(-log sum_pos p)/d logits = p - p*1[pos]/gold
            dlog = wq * (p - np.where(pos, p / max(gold, 1e-12), 0.0))
            if hidden:
                grads[2] += h.T @ dlog
                dh = np.outer(dlog, w2) * (1 - h**2)
                grads[0] += z.T @ dh
                grads[1] += dh.sum(axis=0)
            else:
                grads[0] += z.T @ dlog
        norm = w_q.sum()
        total /= norm
        grads = [g / norm for g in grads]
        for i, p_ in enumerate(params):
            if p_.ndim >= 1 and (not hidden or i in (0, 2)):
                total += 0.5 * l2 * float((p_**2).sum())
                grads[i] = grads[i] + l2 * p_
        return total, np.concatenate([g.ravel() for g in grads])

    theta0 = rng.normal(0.0, 0.1, sum(sizes))
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 400})
    params = unpack(res.x)
    if hidden:
        W1, b1, w2, _ = params
        W1[unused, :] = 0.0
        return Standardized(FEATURES, mean, std, ((W1, b1),), w2, 0.0)
    params[0][unused] = 0.0
    return Standardized(FEATURES, mean, std, (), params[0], 0.0)


def fit_logistic(
    X: np.ndarray,
    y: np.ndarray,
    l2: float,
    names: Sequence[str],
    sample_weight: np.ndarray | None = None,
) -> Standardized:
    from scipy.optimize import minimize

    mean, std = _standardize(X)
    Z = (X - mean) / std
    n, d = Z.shape
    sw = np.ones(n) if sample_weight is None else sample_weight / sample_weight.mean()

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d], theta[d]
        z = Z @ w + b
        p = 1 / (1 + np.exp(-z))
        eps = 1e-12
        total = -np.mean(sw * (y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
        g = sw * (p - y)
        gw = Z.T @ g / n + l2 * w
        gb = g.mean()
        return float(total + 0.5 * l2 * (w**2).sum()), np.concatenate([gw, [gb]])

    res = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B")
    return Standardized(tuple(names), mean, std, (), res.x[:d], float(res.x[d]))


# -- evaluation ----------------------------------------------------------------------


class Labelled(Protocol):
    """A question's candidates with their labels (a Sample, or a cross-encoder CandidateSet)."""

    gold_doc: np.ndarray  # candidate is from a gold document
    facts: np.ndarray  # candidates x key facts


def fact_cited(s: Labelled, chosen: Sequence[int]) -> float:
    """Key-fact recall of the chosen sentences, counted only when the gold article is cited."""
    if not chosen or not s.gold_doc[list(chosen)].any():
        return 0.0
    if s.facts.shape[1] == 0:
        return 1.0
    return float(s.facts[list(chosen)].any(axis=0).mean())


def _lookup(table: dict[str, float], term: str) -> float:
    return table.get(term, 0.0)


def answerability_matrix(samples: Sequence[Sample], scorer: Standardized) -> np.ndarray:
    rows = []
    for s in samples:
        logits = scorer(s.X) if len(s.X) else np.zeros(0)
        scored = s.extra["scored"]
        idf: dict[str, float] = s.extra["idf"]
        rows.append(answerability_features(s.question, scored, logits, partial(_lookup, idf)))
    return np.stack(rows)


def choose_threshold(p: np.ndarray, answerable: np.ndarray, max_false_refusal: float) -> float:
    """The highest threshold whose false-refusal rate stays within the target."""
    pos = np.sort(p[answerable])
    if len(pos) == 0:
        return 0.5
    k = int(np.floor(max_false_refusal * len(pos)))
    # Refuse when p < threshold: at most k answerable questions below it.
    return float(pos[k]) if k < len(pos) else float(pos[-1])


def evaluate(
    samples: Sequence[Sample],
    scorer: Callable[[Sample], np.ndarray],
    answerable_p: np.ndarray | None,
    threshold: float,
    ratio: float,
) -> dict[str, float]:
    ans = [i for i, s in enumerate(samples) if s.answerable]
    una = [i for i, s in enumerate(samples) if not s.answerable]
    top1 = top3 = kf = 0.0
    with_gold = 0
    false_refusals = 0
    for i in ans:
        s = samples[i]
        scores = scorer(s)
        if len(scores) == 0:
            false_refusals += 1
            continue
        order = np.argsort(-scores, kind="stable")
        if s.positive.any():
            with_gold += 1
            top1 += float(s.positive[order[0]])
            top3 += float(s.positive[order[:3]].any())
        refused = answerable_p is not None and answerable_p[i] < threshold
        if refused:
            false_refusals += 1
            continue
        kf += fact_cited(s, compose(softmax(scores), ratio))
    refused_una = sum(1 for i in una if answerable_p is not None and answerable_p[i] < threshold)
    refused_all = false_refusals + refused_una
    return {
        "n_answerable": len(ans),
        "n_unanswerable": len(una),
        "top1": top1 / max(1, with_gold),
        "top3": top3 / max(1, with_gold),
        "gold_in_candidates": with_gold / max(1, len(ans)),
        "key_fact_cited": kf / max(1, len(ans)),
        "refusal_recall": refused_una / len(una) if una else float("nan"),
        "refusal_precision": refused_una / refused_all if refused_all else float("nan"),
        "false_refusal": false_refusals / max(1, len(ans)),
    }


def rules_metrics(samples: Sequence[Sample]) -> dict[str, float]:
    ans = [s for s in samples if s.answerable]
    una = [s for s in samples if not s.answerable]
    refused_una = sum(s.rules_refused for s in una)
    refused_ans = sum(s.rules_refused for s in ans)
    return {
        "key_fact_cited": sum(s.rules_fact_cited for s in ans) / max(1, len(ans)),
        "refusal_recall": refused_una / len(una) if una else float("nan"),
        "refusal_precision": (
            refused_una / (refused_una + refused_ans) if refused_una + refused_ans else float("nan")
        ),
        "false_refusal": refused_ans / max(1, len(ans)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--cache", type=Path, default=None, help="reuse featurised samples")
    parser.add_argument("--max-false-refusal", type=float, default=0.10)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Every sentence is kept: questions over one collection share most of them.
    settings = Settings(sentence_cache_size=10_000_000)
    engine = Dossier(settings, answerer=RulesAnswerer())
    cache = args.cache or settings.data_dir / "train-answerer.pkl"
    samples = _load_cache(cache) if cache.exists() else []
    log.info("loaded %d featurised questions from %s", len(samples), cache)
    have = {(s.dataset, s.qid) for s in samples}
    missing = [q for q in raw_questions(settings) if (q.dataset, q.qid) not in have]
    if missing:  # featurise only what the cache lacks (a new dataset, new questions)
        for suite in (load_bbc(settings), load_squad2(settings, split=None), load_seed(settings)):
            ingest_suite(engine, suite)
        samples += featurise(engine, missing)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps(samples))
    report = fit_and_report(samples, args.max_false_refusal, article_groups())
    model: AnswerModel = report.pop("_model")
    digest = model.save(args.out)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=1, default=float) + "\n", encoding="utf-8")
    log.info("wrote %s (sha256 %s) and %s", args.out, digest[:12], REPORT)
    return 0


class _Unpickler(pickle.Unpickler):
    # Run as ``python -m``, this module is ``__main__`` and the cache names its classes so;
    # map them back, so any importer can read the cache.
    def find_class(self, module: str, name: str) -> Any:
        if module == "__main__" and name in globals():
            return globals()[name]
        return super().find_class(module, name)


def _load_cache(path: Path) -> list[Sample]:
    with path.open("rb") as f:
        samples: list[Sample] = _Unpickler(f).load()
    for s in samples:
        _upgrade(s)
    return samples


def _upgrade(s: Sample) -> None:
    """Add the feature columns a cache written before them lacks. Only features computed
    from the question and the candidates' text can be added this way; others need the
    cache deleted (a full featurisation)."""
    have = s.X.shape[1]
    if have == len(FEATURES):
        return
    lacking = FEATURES[have:]
    if any(name not in TEXT_FEATURES for name in lacking):
        raise SystemExit(f"the cache lacks {lacking}: delete it to featurise again")
    texts = [c.text for c in s.extra["scored"].candidates]
    columns = [TEXT_FEATURES[name](s.question, texts)[:, None] for name in lacking]
    s.X = np.hstack([s.X, *columns]).astype(np.float32)
    light = s.extra["scored"]
    s.extra["scored"] = type(light)(light.candidates, s.X, light.question_terms, light.sentence_cos)


def article_groups() -> dict[str, str]:
    """Our training questions' articles (the one asked about, or written near): folds
    for choosing the answerability model are cut by article, never by question."""
    return {
        str(row["id"]): str(row.get("doc") or row.get("near_doc") or row["id"])
        for row in read_jsonl(BBC_TRAIN_FILE)
    }


def domain_of(s: Sample) -> str:
    return "squad2" if s.dataset == "squad2" else "news"


def calibration_of(s: Sample) -> str:
    """The calibration the service applies to ``s``: conversations' turns have their own."""
    return "chat" if s.dataset == "bbc-chat" else domain_of(s)


def auc(p: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC: the chance an answerable question scores above an unanswerable one."""
    pos, neg = p[y], p[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def class_weights(samples: Sequence[Sample], balanced: bool) -> np.ndarray:
    """Per-question weights. Balanced: each domain's answerable and unanswerable questions
    weigh half of that domain each. The base rates differ (our news questions are 79%
    answerable, SQuAD's about half), and a model that learns a domain's base rate from
    its look is calibrated for neither."""
    w = np.ones(len(samples))
    if not balanced:
        return w
    for domain in {domain_of(s) for s in samples}:
        for answerable in (True, False):
            idx = [
                i
                for i, s in enumerate(samples)
                if domain_of(s) == domain and s.answerable == answerable
            ]
            if idx:
                w[idx] = 0.5 / len(idx)
    out: np.ndarray = w * len(samples) / w.sum()
    return out


@dataclass(frozen=True)
class AnswerabilityChoice:
    name: str
    model: Standardized
    news_threshold: float
    # Per option: news ROC AUC, the one news threshold, refusal recall at it (out of fold
    # and validation pooled).
    table: dict[str, dict[str, float]]


def choose_answerability(
    train: Sequence[Sample],
    val: Sequence[Sample],
    scorer: Standardized,
    groups: dict[str, str],
    max_false_refusal: float,
) -> AnswerabilityChoice:
    """Fit each option and choose on news questions it was not fit on: out of fold over our
    news training questions (5 folds by article), and each news validation set.

    One news threshold must keep false refusals within ``max_false_refusal`` on each of
    them (P(answerable) drifts between collections: a one-article dossier asks short
    questions), so it is the lowest of their thresholds; the option refusing most
    unanswerable news questions at its threshold wins, ROC AUC breaking ties.
    """
    A_train = answerability_matrix(train, scorer)
    y_train = np.array([s.answerable for s in train], dtype=bool)
    A_val = answerability_matrix(val, scorer)
    y_val = np.array([s.answerable for s in val], dtype=bool)
    news = np.array([domain_of(s) == "news" for s in train], dtype=bool)
    news_sets = sorted({s.dataset for s in val if domain_of(s) == "news"})
    fold = np.array(
        [
            zlib.crc32(groups.get(s.qid, s.qid).encode()) % 5 if news[i] else -1
            for i, s in enumerate(train)
        ]
    )
    table: dict[str, dict[str, float]] = {}
    fitted: dict[str, tuple[Standardized, float]] = {}

    def fit_on(mask: np.ndarray, l2: float, weight: np.ndarray) -> Standardized:
        """The logistic model fit on the training questions in ``mask``."""
        y = y_train[mask].astype(np.float64)
        return fit_logistic(A_train[mask], y, l2, ANSWERABILITY_FEATURES, weight[mask])

    for with_squad in (True, False):
        for balanced in (True, False):
            for l2 in (1e-2, 1e-1):
                name = f"{'news+squad' if with_squad else 'news'}, " + (
                    f"{'balanced' if balanced else 'unweighted'}, l2={l2:g}"
                )
                use = np.ones(len(train), dtype=bool) if with_squad else news
                w = class_weights([s for s, u in zip(train, use, strict=True) if u], balanced)
                weight = np.zeros(len(train))
                weight[use] = w
                held_out = np.zeros(len(train))
                for k in range(5):
                    model = fit_on(use & (fold != k), l2, weight)
                    held_out[fold == k] = model(A_train[fold == k])
                model = fit_on(use, l2, weight)
                val_logit = model(A_val)
                # Scores and labels of each news set the option was not fit on.
                sets = [(held_out[news], y_train[news])] + [
                    (val_logit[mask], y_val[mask])
                    for ds in news_sets
                    for mask in [np.array([s.dataset == ds for s in val], dtype=bool)]
                ]
                logit_threshold = min(choose_threshold(z, y, max_false_refusal) for z, y in sets)
                scores = np.concatenate([z for z, _ in sets])
                labels = np.concatenate([y for _, y in sets])
                threshold = float(1 / (1 + np.exp(-logit_threshold)))
                table[name] = {
                    "news_auc": auc(scores, labels),
                    "news_threshold": threshold,
                    "news_refusal_recall": float((scores[~labels] < logit_threshold).mean()),
                    "news_false_refusal": float((scores[labels] < logit_threshold).mean()),
                }
                fitted[name] = (model, threshold)
                log.info("answerability %-40s %s", name, table[name])
    best = max(table, key=lambda k: (table[k]["news_refusal_recall"], table[k]["news_auc"]))
    return AnswerabilityChoice(best, fitted[best][0], fitted[best][1], table)


def _by(samples: Sequence[Sample], split: str, dataset: str | None = None) -> list[Sample]:
    return [s for s in samples if s.split == split and (dataset is None or s.dataset == dataset)]


def fit_and_report(
    samples: list[Sample], max_false_refusal: float, groups: dict[str, str]
) -> dict[str, Any]:
    train = _by(samples, "train")
    val = _by(samples, "validation")
    in_domain = [s for s in train if s.dataset.startswith("bbc")]
    options: dict[str, Standardized] = {}
    for data_name, data in (("bbc", in_domain), ("bbc+squad", train)):
        for hidden in (0, 8):
            for l2 in (1e-3, 1e-2):
                name = f"{'mlp' if hidden else 'linear'}[{data_name}, l2={l2:g}]"
                options[name] = fit_listwise(data, hidden, l2)
                log.info("fitted %s", name)
    col = FEATURES.index("cos")

    def cosine(s: Sample) -> np.ndarray:
        return s.X[:, col].astype(np.float64)

    # Choose the scorer on validation top-3 then top-1 (selection quality alone).
    def val_score(scorer: Standardized) -> tuple[float, float]:
        r = evaluate(val, lambda s: scorer(s.X), None, 0.0, 1.0)
        return (r["top3"] + r["top1"], r["top1"])

    ranking = sorted(options, key=lambda k: val_score(options[k]), reverse=True)
    for k in ranking:
        log.info("validation %-32s top1+top3 %.3f", k, val_score(options[k])[0])
    best_name = ranking[0]
    scorer = options[best_name]

    # Answerability: logistic regression over question-level features, fit on train,
    # its options chosen on news questions it was not fit on.
    choice = choose_answerability(train, val, scorer, groups, max_false_refusal)
    answerability = choice.model
    p_val = 1 / (1 + np.exp(-answerability(answerability_matrix(val, scorer))))
    ans_val = np.array([s.answerable for s in val], dtype=bool)
    # P(answerable) is not calibrated across domains (news vs. SQuAD's adversarial
    # Wikipedia questions: one threshold for both either refuses most answerable SQuAD
    # questions or few unanswerable news ones), so the threshold is chosen per domain on
    # its validation questions. News is the model's default; SQuAD's collection is given
    # its own (the previous single threshold, the lowest of the two, is reported too).
    news = np.array([s.dataset == "bbc-dev" for s in val], dtype=bool)
    squad = np.array([domain_of(s) == "squad2" for s in val], dtype=bool)
    per_domain = {
        "news": choice.news_threshold,
        "squad2": choose_threshold(p_val[squad], ans_val[squad], max_false_refusal),
    }
    # A conversation's turns: a refused follow-up loses the conversation the user built
    # (a standalone question can be asked again in other words), and condensed follow-ups
    # score lower than the questions they were condensed from. So turns after the first
    # get their own calibration, for half the false refusals on the validation
    # conversations, never stricter than news.
    chat = np.array([s.dataset == "bbc-chat" for s in val], dtype=bool)
    per_domain["chat"] = min(
        per_domain["news"],
        choose_threshold(p_val[chat], ans_val[chat], max_false_refusal * CHAT_FALSE_REFUSAL_SHARE),
    )
    threshold = per_domain["news"]

    # Composition ratio on validation: key facts with the gold article cited (the product
    # allows up to three sentences; ties go to the fewer sentences, the larger ratio).
    def comp_value(ratio: float) -> float:
        r = evaluate(val, lambda s: scorer(s.X), p_val, threshold, ratio)
        return float(r["key_fact_cited"])

    ratios = [1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.0]
    ratio = max(ratios, key=comp_value)

    # Trivial refusal baseline: refuse below a max-cosine threshold chosen the same way.
    cos_val = np.array([s.X[:, col].max() if len(s.X) else 0.0 for s in val])
    cos_threshold = choose_threshold(cos_val[news], ans_val[news], max_false_refusal)

    model = AnswerModel(
        scorer=scorer,
        answerability=answerability,
        threshold=threshold,
        compose_ratio=ratio,
        calibrations=per_domain,
        meta={
            "scorer": best_name,
            "seed": SEED,
            "max_false_refusal": max_false_refusal,
            "threshold_rule": "highest P(answerable) threshold with at most max_false_refusal "
            "of the answerable validation questions refused, per domain; news is the default; "
            "chat (a conversation's later turns): at most max_false_refusal * "
            f"{CHAT_FALSE_REFUSAL_SHARE:g} of the validation conversations' turns, "
            "never above news",
            "answerability": choice.name,
            "answerability_choice": choice.table,
            "trained_on": sorted({f"{s.dataset}:{s.split}" for s in train}),
            "n_train_questions": len(train),
            "unused_features": list(UNUSED_FEATURES),
            "validation_choice": {k: val_score(options[k]) for k in ranking},
        },
    )
    table: dict[str, Any] = {
        "chosen": best_name,
        "threshold": threshold,
        "threshold_per_validation_dataset": per_domain,
        "answerability": choice.name,
        "answerability_choice": choice.table,
        "ratio": ratio,
    }
    rows = []
    for split in ("train", "validation", "test"):
        for dataset in sorted({s.dataset for s in samples if s.split == split}):
            part = _by(samples, split, dataset)
            p = 1 / (1 + np.exp(-answerability(answerability_matrix(part, scorer))))
            cos_max = np.array([s.X[:, col].max() if len(s.X) else 0.0 for s in part])
            rows.append(
                {
                    "split": split,
                    "dataset": dataset,
                    "baseline_cosine": evaluate(part, cosine, cos_max, cos_threshold, 1.0),
                    "baseline_cosine_top3": evaluate(part, cosine, cos_max, cos_threshold, 0.0),
                    "old_rules": rules_metrics(part),
                    "model": evaluate(
                        part, lambda s: scorer(s.X), p, per_domain[calibration_of(part[0])], ratio
                    ),
                    "model_one_threshold": evaluate(
                        part, lambda s: scorer(s.X), p, min(per_domain.values()), ratio
                    ),
                }
            )
    table["rows"] = rows
    print_table(table)
    table["_model"] = model
    return table


def print_table(table: dict[str, Any]) -> None:
    print(
        f"chosen scorer: {table['chosen']}; refusal threshold {table['threshold']:.3f}; "
        f"compose ratio {table['ratio']}; per validation domain "
        f"{ {k: round(v, 3) for k, v in table['threshold_per_validation_dataset'].items()} }"
    )
    print(
        f"answerability: {table['answerability']}; each option on news questions it was not "
        "fit on (out of fold + validation): AUC, threshold, refusal recall, false refusals"
    )
    for name, r in table["answerability_choice"].items():
        print(
            f"  {name:<36} {r['news_auc']:.3f} {r['news_threshold']:.3f} "
            f"{r['news_refusal_recall']:.2f} {r['news_false_refusal']:.3f}"
        )
    head = (
        f"{'split':<10} {'dataset':<10} {'system':<22} {'n':>5} {'top1':>5} {'top3':>5} "
        f"{'kf+cite':>7} {'refR':>5} {'refP':>5} {'falseR':>6}"
    )
    print(head)
    print("-" * len(head))
    for row in table["rows"]:
        for system in (
            "baseline_cosine",
            "baseline_cosine_top3",
            "old_rules",
            "model",
            "model_one_threshold",
        ):
            r = row[system]
            n = f"{r.get('n_answerable', '')}+{r.get('n_unanswerable', '')}"
            print(
                f"{row['split']:<10} {row['dataset']:<10} {system:<22} {n:>5} "
                f"{r.get('top1', float('nan')):>5.2f} {r.get('top3', float('nan')):>5.2f} "
                f"{r['key_fact_cited']:>7.3f} {r['refusal_recall']:>5.2f} "
                f"{r['refusal_precision']:>5.2f} {r['false_refusal']:>6.3f}"
            )


if __name__ == "__main__":
    raise SystemExit(main())
