"""Choose how much of the topic a follow-up carries (``CarryPolicy``), on validation only.

    python -m training.tune_condenser [--out training/reports/tune_condenser.json]

Every policy of a small grid answers the **validation** conversations of bbc-qa-dev
(``evals/splits.py``; the test conversations are never read here) as the chat
endpoint would: each turn after the earlier turns and Dossier's own answers to them.
It prints, per policy, retrieval hit@5 and key-fact recall on the follow-up turns,
topic switches answered from the new article and unanswerable follow-ups refused,
with the trivial baseline (every turn asked as typed, no history) and the reference
(every turn asked in its standalone rewrite) in the same run (about 10 minutes).
The policy with the highest hit@5 + key facts on follow-ups wins (ties: fewer
carried words); put it into ``CarryPolicy``'s defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dossier.chat.condense import CarryPolicy, Message, OfflineCondenser
from dossier.engine import Dossier
from dossier.settings import Settings
from evals import metrics as m
from evals.loaders import BBC_COLLECTION, EvalQuestion, load_bbc_chat
from evals.runner import _Gold, ingest_suite, turn_role

log = logging.getLogger(__name__)
TOP_K = 5


def _score(
    engine: Dossier,
    gold: _Gold,
    conversations: list[list[EvalQuestion]],
    mode: str,
) -> dict[str, float]:
    """mode: "chat" (in context), "as_typed" (no history) or "standalone" (the rewrite)."""
    sums: dict[str, list[float]] = {}
    for turns in conversations:
        messages: list[Message] = []
        for q in turns:
            asked = q.in_context or q.question
            if mode == "chat":
                answer = engine.chat([*messages, Message("user", asked)], BBC_COLLECTION, TOP_K)
            else:
                text = q.question if mode == "standalone" else asked
                answer = engine.ask(text, BBC_COLLECTION, TOP_K)
            messages += [Message("user", asked), Message("assistant", answer.text)]
            role = turn_role(q)
            if role == "follow_up":
                ranked = [sp.passage.passage_id for sp in answer.passages]
                hit = m.retrieval_scores(gold.expected_ids(q), ranked, [TOP_K])[f"recall@{TOP_K}"]
                text = "" if answer.refused else m.strip_markers(answer.text)
                sums.setdefault("follow_up_hit@5", []).append(hit)
                sums.setdefault("follow_up_key_fact_recall", []).append(
                    m.key_fact_recall(text, q.key_facts)
                )
            elif role == "topic_switch":
                cited = {c.doc_id for c in answer.citations}
                ok = not answer.refused and bool(cited & gold.doc_ids_of(q))
                sums.setdefault("topic_switch_answered_from_new", []).append(float(ok))
            elif role == "unanswerable_follow_up":
                sums.setdefault("unanswerable_follow_up_refused", []).append(float(answer.refused))
    return {k: round(sum(v) / len(v), 4) for k, v in sums.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("training/reports/tune_condenser.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = Settings()
    engine = Dossier(settings)
    suite = load_bbc_chat(settings, "validation")
    ingest_suite(engine, suite)
    gold = _Gold(engine, BBC_COLLECTION)
    conversations: list[list[EvalQuestion]] = []
    for q in suite.questions:
        if not q.history:
            conversations.append([])
        conversations[-1].append(q)

    rows: list[dict[str, Any]] = []
    for mode in ("as_typed", "standalone"):
        reference: dict[str, Any] = {"policy": mode, **_score(engine, gold, conversations, mode)}
        rows.append(reference)
        print(json.dumps(reference))
    # Two stages, to keep the run short on two cores: first whether answers' words and
    # skipping already-shown sentences help (at 2 names), then how many names and words.
    grid = [(2, 0, a, skip) for a in (0, 2) for skip in (True, False)]
    grid += [(n, w, 0, False) for n in (1, 2, 3, 4) for w in (0, 2) if (n, w) != (2, 0)]
    for names, n_words, answer_words, skip in grid:
        policy = CarryPolicy(names=names, words=n_words, answer_words=answer_words)
        engine.__dict__["condenser"] = OfflineCondenser(policy)
        engine.settings = settings.model_copy(update={"chat_skip_shown": skip})
        scores = _score(engine, gold, conversations, "chat")
        row: dict[str, Any] = {"policy": {**asdict(policy), "chat_skip_shown": skip}, **scores}
        rows.append(row)
        print(json.dumps(row))

    def key(row: dict[str, Any]) -> tuple[float, int]:
        p = row["policy"]
        carried = p["names"] + p["words"] + p["answer_words"]
        return (row["follow_up_hit@5"] + row["follow_up_key_fact_recall"], -carried)

    best = max((r for r in rows if isinstance(r["policy"], dict)), key=key)
    print("chosen:", json.dumps(best))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "chosen": best}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
