"""``/v1/ask`` latency over loopback HTTP on the BBC collection, per answerer, in one run.

    python benchmarks/ask_latency.py [--rounds 2] [--answerers cosine,rules,extractive]
        [--stored-vectors on|off|both] [--stored-sentences on|off|both] [--out FILE]
    python benchmarks/ask_latency.py --endpoints [--rounds 5] [--out FILE]

Needs the BBC corpus ingested into the data directory's ``bbc`` collection (``dossier
ingest ../shared/benchmarks/news-bbc/bbc --collection bbc``, or any ``dossier eval
--suite bbc``). Asks bbc-qa-dev's 110 questions (each round in the same order) through
one server per answerer: the learned model (``extractive``), the old rules and the
cosine baseline, so the numbers compare as ratios. Sentence vectors are cached per
server; the first round is cold, later rounds warm, and both are reported.
``--stored-vectors both`` runs each answerer without and then with the sentence vectors
saved at ingest (``DOSSIER_SENTENCE_VECTORS``; the collection needs them: ``dossier
index-sentences --collection bbc``), the before/after of that change in one run. Each
server starts with empty caches (the process-wide memo of sentence spans and terms is
cleared too), and the load average is recorded around each, since runs are sequential.
``--stored-sentences both`` does the same for the sentence table (each passage's sentence
spans and terms, saved with the vectors; ``DOSSIER_STORED_SENTENCES``): off splits and
stems passages per request, the before of that change. Every variant's answers (text and
refusal) are compared with the first variant's of the same answerer: the number answered
differently and the largest difference in P(answerable) are printed (the dense scores
wobble in the third decimal between two servers with the same settings, so P may too).

``--endpoints`` compares ``/v1/ask`` with ``/v1/chat/completions`` (single-turn,
non-streaming) for the default (extractive) answerer on the seed collection, ingested
into a temporary directory: the seed suite's questions, each asked of both endpoints
back to back (alternating which goes first), after one untimed pass over both. Pairing
keeps a shared machine's load drift out of the difference; the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from dossier.answer.registry import build_answerer
from dossier.answer.selection import clear_caches
from dossier.engine import Dossier
from dossier.index.embeddings import embedder_id
from dossier.settings import Settings
from dossier.testing import LiveServer, make_settings
from evals.loaders import BBC_COLLECTION, bbc_dev_rows, load_seed
from ingest.pipeline import Ingestor
from service.app import create_app

ROOT = Path(__file__).resolve().parents[1]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q * 100)) if values else float("nan")


def measure(
    settings: Settings, answerer: str, questions: list[str], rounds: int
) -> tuple[dict[str, Any], list[tuple[str, bool, float | None]]]:
    """Latencies per round, and each question's answer (from the first round)."""
    # A cold round must find nothing memoised by the previous server in this process.
    clear_caches()
    engine = Dossier(settings, answerer=build_answerer(settings, answerer))
    engine.warm_up()
    engine.ask("warm up the model", BBC_COLLECTION)
    stored = engine.lexical.index(BBC_COLLECTION).sentence_vectors(embedder_id(engine.embedder))
    if settings.sentence_vectors and stored is None:
        raise SystemExit(
            "the bbc collection has no saved sentence vectors: run `dossier index-sentences "
            "--collection bbc` first, or pass --stored-vectors off"
        )
    index = engine.lexical.index(BBC_COLLECTION)
    if settings.stored_sentences and index.sentence_table() is None:
        raise SystemExit(
            "the bbc collection has no saved sentence table: run `dossier index-sentences "
            "--collection bbc` first, or pass --stored-sentences off"
        )
    out: dict[str, Any] = {
        "answerer": answerer,
        "stored_vectors": settings.sentence_vectors,
        "stored_sentences": settings.stored_sentences,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }
    with (
        LiveServer(create_app(settings, engine)) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        answers: list[tuple[str, bool, float | None]] = []
        for r in range(rounds):
            times = []
            for q in questions:
                t0 = time.perf_counter()
                response = client.post("/v1/ask", json={"question": q, "collection": "bbc"})
                times.append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
                if r == 0:
                    body = response.json()
                    answers.append(
                        (body["answer"], body["refused"], body["answerable_probability"])
                    )
            label = "cold" if r == 0 else f"warm{r}"
            out[f"{label}_p50_ms"] = round(pct(times, 0.5), 1)
            out[f"{label}_p95_ms"] = round(pct(times, 0.95), 1)
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out, answers


SEED = "albania-iran"


def compare_endpoints(rounds: int) -> dict[str, Any]:
    """p50/p95 of /v1/ask and /v1/chat/completions on the same questions, same server."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(Path(tmp), ROOT / "corpus")
        engine = Dossier(settings)
        Ingestor(settings, engine.store, engine.embedder).ingest(ROOT / "corpus" / SEED, SEED)
        questions = [q.question for q in load_seed(settings).questions if q.collection == SEED]
        requests: dict[str, Callable[[str], tuple[str, dict[str, Any]]]] = {
            "ask": lambda q: ("/v1/ask", {"question": q, "collection": SEED}),
            "chat_completions": lambda q: (
                "/v1/chat/completions",
                {"model": SEED, "messages": [{"role": "user", "content": q}]},
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in requests}
        load_before = os.getloadavg()
        with (
            LiveServer(create_app(settings, engine)) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            for r in range(rounds + 1):  # round 0 warms both endpoints and is not kept
                for i, q in enumerate(questions):
                    order = list(requests) if (i + r) % 2 == 0 else list(reversed(requests))
                    for name in order:
                        path, body = requests[name](q)
                        t0 = time.perf_counter()
                        response = client.post(path, json=body)
                        elapsed = (time.perf_counter() - t0) * 1000
                        response.raise_for_status()
                        if r > 0:
                            times[name].append(elapsed)
        load_after = os.getloadavg()
    out: dict[str, Any] = {
        "collection": SEED,
        "answerer": settings.answerer,
        "questions": len(questions),
        "rounds": rounds,
        "requests_per_endpoint": len(times["ask"]),
        "cpus": os.cpu_count(),
        "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
        "loadavg_1_5_15_after": [round(x, 2) for x in load_after],
    }
    for name, values in times.items():
        out[f"{name}_p50_ms"] = round(pct(values, 0.5), 2)
        out[f"{name}_p95_ms"] = round(pct(values, 0.95), 2)
    out["p50_diff_ms"] = round(out["chat_completions_p50_ms"] - out["ask_p50_ms"], 2)
    out["p95_diff_ms"] = round(out["chat_completions_p95_ms"] - out["ask_p95_ms"], 2)
    paired = [c - a for a, c in zip(times["ask"], times["chat_completions"], strict=True)]
    out["paired_diff_p50_ms"] = round(pct(paired, 0.5), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="default 2, or 5 with --endpoints")
    parser.add_argument(
        "--endpoints",
        action="store_true",
        help="compare /v1/ask with /v1/chat/completions on the seed collection",
    )
    parser.add_argument(
        "--answerers",
        default="cosine,rules,extractive",
        help="comma-separated; the first is the base of the cold p95 ratios",
    )
    parser.add_argument(
        "--stored-vectors",
        choices=("on", "off", "both"),
        default="on",
        help="use the sentence vectors saved at ingest; both: off, then on, per answerer",
    )
    parser.add_argument(
        "--stored-sentences",
        choices=("on", "off", "both"),
        default="on",
        help="read sentence spans and terms from the saved sentence table; both: off, then on",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results_dir = ROOT / "benchmarks" / "results"
    if args.endpoints:
        result = compare_endpoints(args.rounds or 5)
        print(
            f"{result['questions']} seed questions x {result['rounds']} rounds, loopback HTTP, "
            f"{result['answerer']} answerer, load {result['loadavg_1_5_15_before']} -> "
            f"{result['loadavg_1_5_15_after']} on {result['cpus']} CPUs"
        )
        for name in ("ask", "chat_completions"):
            print(
                f"{name:>17}: p50 {result[f'{name}_p50_ms']} ms, p95 {result[f'{name}_p95_ms']} ms"
            )
        print(
            f"chat/completions - ask: p50 {result['p50_diff_ms']:+} ms, "
            f"p95 {result['p95_diff_ms']:+} ms (paired per question, median "
            f"{result['paired_diff_p50_ms']:+} ms)"
        )
        out = args.out or results_dir / "ask_vs_chat_completions.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")
        return
    args.rounds = args.rounds or 2
    args.out = args.out or results_dir / "ask_latency.json"
    # One client asking back to back outruns the default per-caller rate limit (10/s) once
    # answers are fast; the limiter still runs, it just never refuses here.
    settings = Settings().model_copy(update={"rate_limit_per_minute": 1e9})
    questions = [str(r["question"]) for r in bbc_dev_rows(settings)]
    choices = {"on": [True], "off": [False], "both": [False, True]}
    results = []
    first_answers: dict[str, list[tuple[str, bool, float | None]]] = {}
    for a in args.answerers.split(","):
        for v in choices[args.stored_vectors]:
            for t in choices[args.stored_sentences]:
                update = {"sentence_vectors": v, "stored_sentences": t}
                result, answers = measure(
                    settings.model_copy(update=update), a, questions, args.rounds
                )
                base_answers = first_answers.setdefault(a, answers)
                pairs = list(zip(answers, base_answers, strict=True))
                result["answers_differing_from_first_variant"] = sum(
                    x[:2] != y[:2] for x, y in pairs
                )
                result["max_probability_difference"] = round(
                    max(abs((x[2] or 0.0) - (y[2] or 0.0)) for x, y in pairs), 4
                )
                results.append(result)
    base = results[0]["cold_p95_ms"]
    print(
        f"{len(questions)} questions x {args.rounds} rounds, loopback HTTP, collection bbc, "
        f"{os.cpu_count()} CPUs"
    )
    for r in results:
        r[f"cold_p95_vs_{results[0]['answerer']}"] = round(r["cold_p95_ms"] / base, 2)
        print(json.dumps(r))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
