"""Retrieve every training and evaluation question once and keep what a neural model reads.

    python -m training.answer_candidates          # writes .dossier/answer-candidates.pkl

Each question is retrieved as the service would (hybrid retrieval; a conversation's turn
condensed after the turns before it), and each candidate sentence is kept with its
headline and the sentence before it, with today's linear model's logit and P(answerable),
the cosine similarity, and its labels (overlaps the gold sentence in the gold article,
holds each key fact). ``training.train_cross_encoder`` fits on the ``train`` rows,
chooses on ``validation`` and reports ``test`` and ``transfer``; nothing here is fitted.

Questions (split by article before anything was fit, see ``training/data/README.md``):
``bbc-train`` and ``bbc-gen3`` (our written questions, each with its own split),
``bbc-dev`` (bbc-qa-dev, halves by ``evals.splits``), ``seed`` and ``bbc-chat``
(validation turns and test turns), and SQuAD 2.0 half A (``evals.splits``).
"""

from __future__ import annotations

import argparse
import logging
import pickle
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dossier.answer.cross_encoder import pair_context
from dossier.answer.extractive import ExtractiveAnswerer
from dossier.answer.selection import answerability_features, candidates, featurize
from dossier.engine import Dossier
from dossier.settings import Settings
from evals.loaders import (
    load_bbc,
    load_bbc_chat,
    load_seed,
    load_squad2,
)
from evals.runner import ingest_suite
from training.datasets import DATA, rows_with_gold
from training.train_answerer import (
    RawQuestion,
    _asked,
    _bbc,
    gold_labels,
    raw_questions,
    retrieve_as_asked,
    source_ids,
)

log = logging.getLogger("training.answer_candidates")

GEN3_FILE = DATA / "bbc_gen3.jsonl"
DEFAULT_CACHE = Path(".dossier") / "answer-candidates.pkl"


@dataclass
class CandidateSet:
    """One question as retrieved, with every candidate sentence and its labels."""

    qid: str
    dataset: str
    split: str
    style: str  # factoid, why/how, chat, not_covered, off_topic, ... (unanswerable kinds)
    question: str  # as the answerer reads it (condensed, for a conversation's turn)
    answerable: bool
    texts: list[str]
    titles: list[str]
    previous: list[str]
    docs: list[str]
    starts: list[int]
    linear_logits: np.ndarray
    linear_p: float  # today's P(answerable)
    cos: np.ndarray
    positive: np.ndarray  # overlaps the gold sentence (bbc) or holds a gold answer (squad)
    gold_doc: np.ndarray
    facts: np.ndarray  # candidates x key facts
    n_facts: int
    extra: dict[str, Any] = field(default_factory=dict)


def context_of(s: CandidateSet, i: int) -> str:
    """What the cross-encoder reads beside the question for candidate ``i``."""
    return pair_context(s.titles[i], s.texts[i])


def gen3_rows(settings: Settings) -> list[dict[str, Any]]:
    """bbc_gen3.jsonl with each gold sentence read back from its article (offsets only)."""
    return rows_with_gold(settings, GEN3_FILE)


def all_questions(settings: Settings) -> tuple[list[RawQuestion], dict[tuple[str, str], str]]:
    """Every question, and each one's style keyed by (dataset, qid)."""
    out = raw_questions(settings)
    styles: dict[tuple[str, str], str] = {}
    for row in gen3_rows(settings):
        q = _bbc(row, "bbc-gen3", str(row["split"]))
        out.append(q)
        styles[(q.dataset, q.qid)] = str(row.get("style") or row.get("subtype") or "not_covered")
    # The test turns of bbc-chat: reported only, beside the same turns asked standalone.
    for turn in load_bbc_chat(settings, "test").questions:
        out.append(_asked(turn, "bbc-chat", "test", in_conversation=True))
        out.append(_asked(turn, "bbc-chat-standalone", "test"))
    for turn in load_bbc_chat(settings, "validation").questions:
        out.append(_asked(turn, "bbc-chat-standalone", "validation"))
    return out, styles


def style_of(q: RawQuestion, styles: dict[tuple[str, str], str], kinds: dict[str, str]) -> str:
    if (q.dataset, q.qid) in styles:
        return styles[(q.dataset, q.qid)]
    if q.dataset == "bbc-chat":
        return "chat" if q.answerable else "chat/unanswerable"
    kind = kinds.get(q.qid, "")
    if kind:
        head, _, tail = kind.partition("/")
        return tail.replace("why-how", "why/how") if head == "answerable" else tail or head
    return "factoid" if q.answerable else "unanswerable"


def retrieve_all(
    engine: Dossier, questions: Sequence[RawQuestion], styles: dict[tuple[str, str], str]
) -> list[CandidateSet]:
    answerer = engine.answerer
    if not isinstance(answerer, ExtractiveAnswerer):
        raise SystemExit("the linear model's logits need the extractive answerer")
    kinds: dict[str, str] = {}
    settings = engine.settings
    for suite in (
        load_bbc(settings, "test"),
        load_bbc(settings, "validation"),
        load_seed(settings),
    ):
        kinds.update({q.qid: q.kind for q in suite.questions})
    for split in ("train", "validation", "test"):
        kinds.update({q.qid: q.kind for q in load_squad2(settings, split=split).questions})
    doc_ids: dict[str, dict[str, str]] = {}
    texts: dict[tuple[str, str], str] = {}
    out: list[CandidateSet] = []
    started = time.perf_counter()
    for n, q in enumerate(questions, 1):
        if q.collection not in doc_ids:
            doc_ids[q.collection] = source_ids(engine, q.collection)
        r = retrieve_as_asked(engine, q)
        context = r.context
        cands = candidates(r.passages, context.sentences)
        scored = featurize(r.question, context.question_vector, cands, context.idf, context.embed)
        logits, _ = answerer.model.sentence_probabilities(scored.X)
        x = answerability_features(r.question, scored, logits, context.idf)
        p = answerer.model.answerable_probability(x) if cands else 0.0
        _, gold_doc, positive, facts = gold_labels(engine, q, cands, doc_ids[q.collection], texts)
        out.append(
            CandidateSet(
                qid=q.qid,
                dataset=q.dataset,
                split=q.split,
                style=style_of(q, styles, kinds),
                question=r.question,
                answerable=q.answerable,
                texts=[c.text for c in cands],
                titles=[c.passage.passage.title for c in cands],
                previous=[c.previous for c in cands],
                docs=[c.doc_id for c in cands],
                starts=[c.start for c in cands],
                linear_logits=np.asarray(logits, dtype=np.float32),
                linear_p=float(p),
                cos=np.asarray(scored.sentence_cos, dtype=np.float32),
                positive=positive,
                gold_doc=gold_doc,
                facts=facts,
                n_facts=len(q.key_facts),
            )
        )
        if n % 250 == 0:
            log.info("retrieved %d/%d (%.0f s)", n, len(questions), time.perf_counter() - started)
    return out


def load_sets(path: Path = DEFAULT_CACHE) -> list[CandidateSet]:
    with path.open("rb") as f:
        rows: list[dict[str, Any]] = pickle.load(f)
    return [CandidateSet(**row) for row in rows]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--limit", type=int, default=0, help="first N questions (smoke runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings(sentence_cache_size=10_000_000)
    engine = Dossier(settings)
    questions, styles = all_questions(settings)
    if args.limit:
        questions = questions[: args.limit]
    for suite in (load_bbc(settings), load_squad2(settings, split=None), load_seed(settings)):
        ingest_suite(engine, suite)
    sets = retrieve_all(engine, questions, styles)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Plain dicts: readable whether this module ran as __main__ or was imported.
    args.out.write_bytes(pickle.dumps([asdict(s) for s in sets]))
    log.info("wrote %d questions to %s", len(sets), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
