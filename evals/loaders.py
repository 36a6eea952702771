"""Eval datasets: the checked-in JSONL golden sets and loaders for public benchmarks.

Every loader returns a :class:`Suite`: the questions plus, per collection, the
folder of documents the runner ingests first. Benchmark documents are written
under the index's data directory (never into the repository) from the files in
``shared/``, which are only read.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dossier.errors import ConfigurationError, InvalidInput
from dossier.settings import Settings

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO / "evals" / "datasets"
SQUAD_FILE = Path("benchmarks") / "squad2-cs224n-dev" / "dev-v2.0-half-a.json"
RGB_FILE = Path("benchmarks") / "rgb" / "en_fact.json"
BBC_DIR = Path("benchmarks") / "news-bbc" / "bbc"
BBC_QA_FILE = Path("benchmarks") / "bbc-qa-dev" / "questions.jsonl"
BBC_CHAT_FILE = Path("benchmarks") / "bbc-qa-dev" / "conversations.jsonl"
# The whole BBC corpus as one collection, as the product would serve it.
BBC_COLLECTION = "bbc"
# The gate's fixed SQuAD sample: a seeded shuffle, so `--limit N` is always the same N questions.
SQUAD_SEED = 20240601
# The CI gate's SQuAD sample size: a few hundred questions keep the gate to ~1.5 minutes
# on two cores (ingesting the 301 paragraphs once is ~20 s of it).
SQUAD_GATE_SAMPLE = 300


@dataclass(frozen=True)
class EvalQuestion:
    """One question to ask, with what a correct answer must contain."""

    qid: str
    question: str
    collection: str
    answerable: bool
    kind: str
    # Each inner tuple lists alternatives; every inner tuple must be matched.
    key_facts: tuple[tuple[str, ...], ...] = ()
    # Exact substrings of a gold document: the evidence a retriever must find.
    gold_spans: tuple[str, ...] = ()
    # Source paths (inside the collection) of the documents holding the gold spans.
    docs: tuple[str, ...] = ()
    # Reference answers for SQuAD's exact match and token F1.
    gold_answers: tuple[str, ...] = ()
    # Multi-turn items: earlier questions, and the question as asked in the conversation.
    history: tuple[str, ...] = ()
    in_context: str | None = None
    # Answers that show the answerer ignored the documents (RGB: the real-world fact).
    prior_answers: tuple[str, ...] = ()
    # SQuAD-style scoring: exact match and token F1, a refusal being the right
    # (empty) answer to an unanswerable question.
    squad_scored: bool = False


@dataclass
class Suite:
    name: str
    questions: list[EvalQuestion]
    # collection name -> folder ingested into it before the run
    collections: dict[str, Path] = field(default_factory=dict)
    # Also answer each question with the trivial baseline (CosineAnswerer), same retrieval.
    baseline: bool = False
    # Collections answered with their own refusal threshold (a number or the name of one
    # of the answer model's calibrations), unless the settings already give one.
    answerable_thresholds: dict[str, float | str] = field(default_factory=dict)


def shared_dir(settings: Settings) -> Path:
    """``shared/`` beside the repository (how CI lays it out), unless DOSSIER_SHARED_DIR says."""
    return settings.shared_dir or (REPO / ".." / "shared").resolve()


def _facts(raw: Any) -> tuple[tuple[str, ...], ...]:
    out: list[tuple[str, ...]] = []
    for fact in raw or []:
        alts = (fact,) if isinstance(fact, str) else tuple(str(a) for a in fact)
        if not alts or not all(a.strip() for a in alts):
            raise InvalidInput(f"empty key fact in {raw!r}")
        out.append(alts)
    return tuple(out)


def _single(qid: str, row: dict[str, Any], collection: str, kind: str) -> EvalQuestion:
    answerable = bool(row.get("answerable", kind != "unanswerable"))
    doc = row.get("doc")
    return EvalQuestion(
        qid=qid,
        question=str(row.get("standalone") or row["question"]),
        collection=collection,
        answerable=answerable,
        kind=kind,
        key_facts=_facts(row.get("key_facts")) if answerable else (),
        gold_spans=tuple(row.get("gold_spans") or ()),
        docs=(doc,) if isinstance(doc, str) else tuple(doc or ()),
        gold_answers=tuple(row.get("gold_answers") or ()),
    )


def parse_items(rows: Iterable[dict[str, Any]], default_collection: str) -> list[EvalQuestion]:
    """Questions from golden-set rows (schema in evals/README.md)."""
    out: list[EvalQuestion] = []
    for n, row in enumerate(rows, 1):
        qid = str(row.get("id") or f"item-{n:04d}")
        collection = str(row.get("collection") or default_collection)
        kind = str(row.get("type", "answerable"))
        if kind == "multi_turn":
            turns = row["turns"]
            history: list[str] = []
            for i, turn in enumerate(turns, 1):
                turn = {"doc": row.get("doc"), **turn}
                q = _single(f"{qid}.t{i}", turn, collection, "multi_turn")
                # Until a chat answerer exists, later turns are asked in their standalone
                # form; the in-context wording is kept for chat evals.
                out.append(replace(q, history=tuple(history), in_context=str(turn["question"])))
                history.append(str(turn["question"]))
            continue
        if kind == "unanswerable":
            kind = f"unanswerable/{row.get('unanswerable_kind', 'unknown')}"
            out.append(
                EvalQuestion(
                    qid=qid,
                    question=str(row["question"]),
                    collection=collection,
                    answerable=False,
                    kind=kind,
                )
            )
            continue
        if kind != "answerable":
            raise InvalidInput(f"{qid}: unknown item type {kind!r}")
        out.append(_single(qid, row, collection, kind))
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}:{lineno}: not JSON: {exc}") from None
    return rows


def load_golden(
    path: Path, settings: Settings, docs: Path | None = None, name: str | None = None
) -> Suite:
    """A JSONL golden set; ``docs`` is ingested into its collection(s) first when given."""
    questions = parse_items(read_jsonl(path), settings.default_collection)
    suite = Suite(name or path.stem, questions)
    if docs is not None:
        for collection in {q.collection for q in questions}:
            suite.collections[collection] = docs
    return suite


def load_seed(settings: Settings) -> Suite:
    suite = load_golden(DATASETS / "seed.jsonl", settings, name="seed")
    suite.collections = {"albania-iran": REPO / "corpus" / "albania-iran"}
    return suite


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "x"


def _write_if_changed(path: Path, text: str) -> None:
    # Rewriting identical files would be harmless for ingestion (content hashes),
    # but keeps the cache's mtimes meaningful.
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def benchmark_file(settings: Settings, rel: Path) -> Path:
    path = shared_dir(settings) / rel
    if not path.exists():
        raise ConfigurationError(
            f"Benchmark file {path} is missing. Put the shared/ folder beside the repository "
            "or point DOSSIER_SHARED_DIR at it."
        )
    return path


def load_squad2(
    settings: Settings, collection: str = "eval-squad2", split: str | None = "test"
) -> Suite:
    """SQuAD 2.0 half A: each paragraph is a document; questions come in a fixed seeded order.

    Every paragraph is ingested (retrieval searches them all); only the questions of
    the ``split``'s articles are asked (``evals/splits.py``; None asks all of them).
    """
    from evals.splits import squad_split

    data = json.loads(benchmark_file(settings, SQUAD_FILE).read_text(encoding="utf-8"))
    folder = settings.data_dir / "eval-docs" / collection
    questions: list[EvalQuestion] = []
    splits = squad_split(str(article["title"]) for article in data["data"])
    for a, article in enumerate(data["data"]):
        title = str(article["title"]).replace("_", " ")
        asked = split is None or splits[str(article["title"])] == split
        for p, para in enumerate(article["paragraphs"]):
            rel = f"{a:02d}-{_slug(title)}/{p:03d}.txt"
            # The headline line gives each paragraph its article's context, as news has.
            _write_if_changed(folder / rel, f"{title}\n\n{para['context']}\n")
            for qa in para["qas"] if asked else ():
                answers = tuple(dict.fromkeys(str(x["text"]) for x in qa.get("answers", [])))
                impossible = bool(qa.get("is_impossible")) or not answers
                questions.append(
                    EvalQuestion(
                        qid=str(qa["id"]),
                        question=str(qa["question"]).strip(),
                        collection=collection,
                        answerable=not impossible,
                        kind="unanswerable/squad" if impossible else "answerable",
                        key_facts=() if impossible else (answers,),
                        gold_spans=() if impossible else answers,
                        docs=(rel,),
                        gold_answers=answers,
                        squad_scored=True,
                    )
                )
    random.Random(SQUAD_SEED).shuffle(questions)
    # SQuAD's adversarial unanswerable questions make P(answerable) run lower than on news:
    # its collection uses the threshold calibrated on SQuAD's validation articles.
    return Suite(
        "squad2",
        questions,
        {collection: folder},
        baseline=True,
        answerable_thresholds={collection: "squad2"},
    )


def load_rgb(settings: Settings) -> Suite:
    """RGB's counterfactual set, as two collections.

    ``eval-rgb-fact`` holds every question's counterfactual passages (the real answer
    replaced by ``fakeanswer``) and its noise passages: a grounded answer states what
    the documents say, so the key fact is the fake answer, and an answer carrying the
    real one ignored the documents. ``eval-rgb-noise`` holds the noise passages only,
    where every question should be refused (RGB's negative rejection).

    Snippets are written bare: a headline made of the query would hand the answerer a
    sentence that repeats the question.
    """
    rows = [
        json.loads(line) for line in benchmark_file(settings, RGB_FILE).read_text().splitlines()
    ]
    root = settings.data_dir / "eval-docs"
    fact, noise = root / "eval-rgb-fact", root / "eval-rgb-noise"
    fact_q: list[EvalQuestion] = []
    noise_q: list[EvalQuestion] = []
    for row in rows:
        i = int(row["id"])
        query = str(row["query"])
        question = query if query.endswith("?") else f"{query}?"
        gold_docs: list[str] = []
        for j, text in enumerate(row.get("positive_wrong", [])):
            rel = f"{i:03d}/wrong-{j}.txt"
            _write_if_changed(fact / rel, f"{text}\n")
            gold_docs.append(rel)
        for j, text in enumerate(row.get("negative", [])):
            for folder in (fact, noise):
                _write_if_changed(folder / f"{i:03d}/noise-{j}.txt", f"{text}\n")
        answer = row["answer"]
        real = (
            tuple(str(a) for alts in answer for a in (alts if isinstance(alts, list) else [alts]))
            if isinstance(answer, list)
            else (str(answer),)
        )
        fake = str(row["fakeanswer"])
        fact_q.append(
            EvalQuestion(
                qid=f"rgb-{i:03d}-fact",
                question=question,
                collection="eval-rgb-fact",
                answerable=True,
                kind="answerable/counterfactual",
                key_facts=((fake,),),
                gold_spans=(fake,),
                docs=tuple(gold_docs),
                prior_answers=real,
            )
        )
        noise_q.append(
            EvalQuestion(
                qid=f"rgb-{i:03d}-noise",
                question=question,
                collection="eval-rgb-noise",
                answerable=False,
                kind="unanswerable/noise-only",
            )
        )
    # Interleaved, so `--limit N` samples both halves.
    questions = [q for pair in zip(fact_q, noise_q, strict=True) for q in pair]
    return Suite("rgb", questions, {"eval-rgb-fact": fact, "eval-rgb-noise": noise})


def read_article(path: Path) -> str:
    """A BBC article as ingestion reads it (one file is cp1252, the rest UTF-8)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252")


def bbc_dev_rows(settings: Settings) -> list[dict[str, Any]]:
    """bbc-qa-dev's ``questions.jsonl`` rows, as written."""
    return read_jsonl(benchmark_file(settings, BBC_QA_FILE))


def _bbc_question(row: dict[str, Any]) -> EvalQuestion:
    qid = str(row["id"])
    if row.get("type") == "unanswerable":
        return EvalQuestion(
            qid=qid,
            question=str(row["question"]),
            collection=BBC_COLLECTION,
            answerable=False,
            kind=f"unanswerable/{row.get('subtype', 'unknown')}",
        )
    return EvalQuestion(
        qid=qid,
        question=str(row["question"]),
        collection=BBC_COLLECTION,
        answerable=True,
        kind=f"answerable/{str(row.get('style', 'factoid')).replace('/', '-')}",
        key_facts=_facts(row.get("key_facts")),
        gold_spans=(str(row["gold_span"]),),
        docs=(str(row["doc"]),),
    )


def load_bbc(settings: Settings, split: str = "test") -> Suite:
    """bbc-qa-dev questions of one split (``evals/splits.py``) over the whole BBC corpus."""
    from evals.splits import article_of, bbc_dev_split

    rows = bbc_dev_rows(settings)
    splits = bbc_dev_split(rows)
    chosen = [r for r in rows if splits[article_of(r)] == split]
    name = "bbc" if split == "test" else f"bbc-{split}"
    return Suite(
        name,
        [_bbc_question(r) for r in chosen],
        {BBC_COLLECTION: benchmark_file(settings, BBC_DIR)},
        baseline=True,
    )


def load_bbc_validation(settings: Settings) -> Suite:
    return load_bbc(settings, "validation")


def chat_turns(conv: dict[str, Any]) -> list[EvalQuestion]:
    """A bbc-qa-dev conversation as questions: each turn asked as typed after the earlier
    ones (``in_context``, ``history``), its standalone rewrite kept as ``question``."""
    out: list[EvalQuestion] = []
    history: list[str] = []
    for i, turn in enumerate(conv["turns"], 1):
        if not history:
            kind = "chat/first"
        elif turn.get("topic_switch"):
            kind = "chat/topic_switch"
        elif turn.get("type") == "unanswerable":
            kind = "chat/unanswerable_follow_up"
        else:
            kind = "chat/follow_up"
        row = {**turn, "id": f"{conv['id']}.t{i}", "question": turn["standalone"]}
        q = _bbc_question(row)
        out.append(replace(q, kind=kind, history=tuple(history), in_context=str(turn["question"])))
        history.append(str(turn["question"]))
    return out


def load_bbc_chat(settings: Settings, split: str = "test") -> Suite:
    """bbc-qa-dev conversations of one split (``evals/splits.py``), over the whole BBC corpus."""
    from evals.splits import bbc_chat_split

    convs = read_jsonl(benchmark_file(settings, BBC_CHAT_FILE))
    splits = bbc_chat_split(convs)
    questions = [q for c in convs if splits[str(c["id"])] == split for q in chat_turns(c)]
    name = "bbc-chat" if split == "test" else f"bbc-chat-{split}"
    return Suite(name, questions, {BBC_COLLECTION: benchmark_file(settings, BBC_DIR)})


def load_bbc_chat_validation(settings: Settings) -> Suite:
    return load_bbc_chat(settings, "validation")


BUILTIN_SUITES = {
    "seed": load_seed,
    "squad2": load_squad2,
    "rgb": load_rgb,
    "bbc": load_bbc,
    "bbc-validation": load_bbc_validation,
    "bbc-chat": load_bbc_chat,
    "bbc-chat-validation": load_bbc_chat_validation,
}


def load_suite(
    suite: str, settings: Settings, docs: Path | None = None, collection: str | None = None
) -> Suite:
    """A built-in suite by name, or a JSONL golden set by path."""
    if suite in BUILTIN_SUITES:
        return BUILTIN_SUITES[suite](settings)
    path = Path(suite)
    if path.suffix == ".jsonl" and path.exists():
        loaded = load_golden(path, settings, docs)
        if collection:
            loaded.questions = [replace(q, collection=collection) for q in loaded.questions]
            if docs is not None:
                loaded.collections = {collection: docs}
        return loaded
    raise InvalidInput(
        f"Unknown suite {suite!r}: use one of {', '.join(BUILTIN_SUITES)} or a .jsonl file."
    )
