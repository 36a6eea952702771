"""The training sets: questions and paraphrases we wrote, kept apart from the eval sets.

Everything here was written from ``bbc-qa-dev/train-articles.txt`` only (see
``training/data/README.md``), so the eval suites in ``evals/`` stay a fair test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dossier.settings import Settings
from evals.loaders import BBC_DIR, benchmark_file, read_article, read_jsonl

DATA = Path(__file__).resolve().parent / "data"
# Questions we wrote from bbc-qa-dev's train-articles.txt only (data/README.md).
BBC_TRAIN_FILE = DATA / "bbc_train.jsonl"
# Hand-written paraphrases of gold sentences, split by article (data/README.md).
PARAPHRASES = DATA / "support_paraphrases.jsonl"


def bbc_train_rows(settings: Settings) -> list[dict[str, Any]]:
    """Our training questions, with each gold sentence read back from its article."""
    return rows_with_gold(settings, BBC_TRAIN_FILE)


def rows_with_gold(settings: Settings, path: Path) -> list[dict[str, Any]]:
    """Question rows of ``path`` with each gold sentence read back from its article.

    The files store character offsets rather than the sentence, so no BBC text is
    copied into the repository.
    """
    root = benchmark_file(settings, BBC_DIR)
    rows = read_jsonl(path)
    texts: dict[str, str] = {}
    for row in rows:
        if row.get("type") == "answerable":
            doc = str(row["doc"])
            if doc not in texts:
                texts[doc] = read_article(root / doc)
            row["gold_span"] = texts[doc][int(row["gold_start"]) : int(row["gold_end"])]
    return rows
