"""The third batch of training questions (training/data/bbc_gen3.jsonl) follows its rules."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from tests.conftest import BBC, ROOT, SHARED

GEN3 = ROOT / "training" / "data" / "bbc_gen3.jsonl"


# The writers' validator's tokenization: the "at most N consecutive words" rule is defined by it.
def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


def _longest_shared_run(a: str, b: str) -> int:
    wa, wb = _words(a), _words(b)
    best = 0
    for n in range(1, 30):
        grams = {tuple(wb[i : i + n]) for i in range(len(wb) - n + 1)}
        if not any(tuple(wa[i : i + n]) in grams for i in range(len(wa) - n + 1)):
            break
        best = n
    return best


@pytest.mark.skipif(not BBC.is_dir(), reason="needs ../shared/benchmarks/news-bbc")
def test_gen3_questions_follow_their_rules() -> None:
    from evals.loaders import read_article

    rows = [json.loads(line) for line in GEN3.read_text(encoding="utf-8").splitlines()]
    qa = SHARED / "benchmarks" / "bbc-qa-dev"
    allowed = set((qa / "train-articles.txt").read_text(encoding="utf-8").split())
    earlier = {
        str(r.get("doc") or r.get("near_doc"))
        for r in map(
            json.loads,
            (ROOT / "training" / "data" / "bbc_train.jsonl").read_text("utf-8").splitlines(),
        )
    }
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["question"].strip().lower() for r in rows}) == len(rows)
    texts: dict[str, str] = {}
    split_of: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for r in rows:
        article = r.get("doc") or r["near_doc"]
        assert article in allowed, r["id"]
        # One split per article; held-out articles were never used by earlier batches.
        assert split_of.setdefault(article, r["split"]) == r["split"], r["id"]
        if r["split"] != "train":
            assert article not in earlier, r["id"]
        counts[f"{r['split']}/{r['type']}"] += 1
        if r["type"] == "unanswerable":
            assert r["subtype"] == "not_covered" and r["missing"], r["id"]
            continue
        if r["doc"] not in texts:
            texts[r["doc"]] = read_article(BBC / r["doc"])
        gold = texts[r["doc"]][r["gold_start"] : r["gold_end"]]
        assert len(gold) >= 25, r["id"]
        for fact in r["key_facts"]:
            assert any(alt.lower() in gold.lower() for alt in fact), r["id"]
        limit = 4 if r["split"] == "transfer" else 6
        assert _longest_shared_run(r["question"], gold) <= limit, r["id"]
    assert counts["train/answerable"] > 2000 and counts["validation/answerable"] > 400
    assert counts["transfer/answerable"] > 50 and counts["transfer/unanswerable"] > 20
