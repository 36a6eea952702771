"""Train / validation / test splits, by article, fixed before anything was fit or chosen.

Questions about one article leak into each other (same entities, same sentences), so
every split here assigns whole articles. The assignment is a salted hash of the
article's name, so it never depends on the questions, their order, or on results.

* ``bbc-qa-dev`` (``questions.jsonl``): half the articles are **test** (at least 40
  answerable and 15 unanswerable questions, as the issue asks), the rest **validation**.
  Training questions come only from ``train-articles.txt`` (see
  ``training/data/README.md``), which shares no article with these files.
* SQuAD 2.0 half A: 8 Wikipedia articles; 4 **train**, 2 **validation**, 2 **test**.
* ``bbc-qa-dev`` ``conversations.jsonl`` (30 conversations, none on an article of
  ``questions.jsonl``): within each kind (follow-up, topic switch, unanswerable
  follow-up), conversations in hash order of their first article, the first half
  (rounded up) **test**, the rest **validation**. Split before the condenser was written.
* The seed golden set and RGB are development data (written or tuned on before).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

Split = Literal["train", "validation", "test"]
SALT = "dossier-split-2026-11"
BBC_TEST_MIN = {"answerable": 40, "unanswerable": 15}
SQUAD_SIZES: dict[Split, int] = {"train": 4, "validation": 2, "test": 2}


def bucket(key: str, salt: str = SALT) -> str:
    """A stable pseudo-random sort key for an article name."""
    return hashlib.sha256(f"{salt}\x00{key}".encode()).hexdigest()


def article_of(row: Mapping[str, Any]) -> str:
    """The article a bbc-qa-dev question belongs to (its gold or nearest document)."""
    return str(row.get("doc") or row.get("near_doc") or row.get("id"))


def bbc_dev_split(rows: Sequence[Mapping[str, Any]]) -> dict[str, Split]:
    """``{article: "validation" | "test"}`` for the rows of ``questions.jsonl``.

    Articles are taken in hash order into test until test holds the minimum answerable
    and unanswerable counts; every later article is validation. An article's questions
    always share its split.
    """
    by_article: dict[str, list[str]] = {}
    for row in rows:
        by_article.setdefault(article_of(row), []).append(str(row.get("type", "answerable")))
    counts = dict.fromkeys(BBC_TEST_MIN, 0)
    out: dict[str, Split] = {}
    for article in sorted(by_article, key=bucket):
        kinds = by_article[article]
        needed = [k for k, n in BBC_TEST_MIN.items() if counts[k] < n]
        if any(k in needed for k in kinds):
            out[article] = "test"
            for k in kinds:
                counts[k] = counts.get(k, 0) + 1
        else:
            out[article] = "validation"
    return out


def squad_split(titles: Iterable[str]) -> dict[str, Split]:
    """``{article title: split}`` for SQuAD half A, in hash order: train, validation, test."""
    ordered = sorted(titles, key=bucket)
    out: dict[str, Split] = {}
    i = 0
    for split, size in SQUAD_SIZES.items():
        for title in ordered[i : i + size]:
            out[title] = split
        i += size
    for title in ordered[i:]:  # more articles than planned: they train
        out[title] = "train"
    return out


def bbc_chat_split(conversations: Sequence[Mapping[str, Any]]) -> dict[str, Split]:
    """``{conversation id: "validation" | "test"}``, by first article, stratified by kind."""
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for conv in conversations:
        by_kind.setdefault(str(conv.get("kind")), []).append(conv)
    out: dict[str, Split] = {}
    for convs in by_kind.values():
        ordered = sorted(convs, key=lambda c: bucket(article_of(c["turns"][0])))
        n_test = (len(ordered) + 1) // 2
        for i, conv in enumerate(ordered):
            out[str(conv["id"])] = "test" if i < n_test else "validation"
    return out
