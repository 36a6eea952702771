"""``/v1/ask`` latency over loopback HTTP on the BBC collection, per answerer, in one run.

    python benchmarks/ask_latency.py [--rounds 2] [--out FILE]

Needs the BBC corpus ingested into the data directory's ``bbc`` collection (``dossier
ingest ../shared/benchmarks/news-bbc/bbc --collection bbc``, or any ``dossier eval
--suite bbc``). Asks bbc-qa-dev's 110 questions (each round in the same order) through
one server per answerer: the learned model (``extractive``), the old rules and the
cosine baseline, so the numbers compare as ratios. Sentence vectors are cached per
server; the first round is cold, later rounds warm, and both are reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from dossier.answering import build_answerer
from dossier.engine import Dossier
from dossier.settings import Settings
from dossier.testing import LiveServer
from evals.loaders import BBC_COLLECTION, bbc_dev_rows
from service.app import create_app

ROOT = Path(__file__).resolve().parents[1]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q * 100)) if values else float("nan")


def measure(settings: Settings, answerer: str, questions: list[str], rounds: int) -> dict[str, Any]:
    engine = Dossier(settings, answerer=build_answerer(settings, answerer))
    engine.warm_up()
    engine.ask("warm up the model", BBC_COLLECTION)
    out: dict[str, Any] = {"answerer": answerer}
    with (
        LiveServer(create_app(settings, engine)) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        for r in range(rounds):
            times = []
            for q in questions:
                t0 = time.perf_counter()
                response = client.post("/v1/ask", json={"question": q, "collection": "bbc"})
                times.append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
            label = "cold" if r == 0 else f"warm{r}"
            out[f"{label}_p50_ms"] = round(pct(times, 0.5), 1)
            out[f"{label}_p95_ms"] = round(pct(times, 0.95), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "ask_latency.json"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = Settings()
    questions = [str(r["question"]) for r in bbc_dev_rows(settings)]
    results = [
        measure(settings, a, questions, args.rounds) for a in ("cosine", "rules", "extractive")
    ]
    base = results[0]["cold_p95_ms"]
    print(f"{len(questions)} questions x {args.rounds} rounds, loopback HTTP, collection bbc")
    for r in results:
        r["cold_p95_vs_cosine"] = round(r["cold_p95_ms"] / base, 2)
        print(json.dumps(r))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
