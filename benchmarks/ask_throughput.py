"""``/v1/ask`` throughput with concurrent clients on the BBC collection, per answerer.

    python benchmarks/ask_throughput.py [--answerers cosine,extractive-linear,extractive-neural]
        [--clients 50] [--seconds 60] [--out FILE]

One in-process server per answerer (as ``ask_latency.py`` builds them), warmed up, then
``--clients`` threads each asking bbc-qa-dev's questions in a loop, over loopback HTTP,
for ``--seconds``: requests/s, p50/p95 and errors. The load generator shares the 2 cores
with the server, so compare answerers as ratios within one run. The per-caller rate limit
is lifted (all clients are one loopback caller). Prints and writes JSON;
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from dossier.answer.registry import build_answerer
from dossier.engine import Dossier
from dossier.settings import Settings
from dossier.testing import LiveServer
from evals.loaders import BBC_COLLECTION, bbc_dev_rows
from service.app import create_app

ROOT = Path(__file__).resolve().parents[1]


def load(url: str, questions: list[str], clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(offset: int) -> None:
        nonlocal errors
        with httpx.Client(base_url=url, timeout=60) as c:
            i = offset
            while time.perf_counter() < stop:
                q = questions[i % len(questions)]
                i += 1
                t0 = time.perf_counter()
                try:
                    ok = c.post("/v1/ask", json={"question": q, "collection": "bbc"}).is_success
                except httpx.HTTPError:
                    ok = False
                with lock:
                    latencies.append((time.perf_counter() - t0) * 1000)
                    errors += not ok

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k * 7,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
        "p95_ms": round(float(np.percentile(latencies, 95)), 1) if latencies else None,
        "errors": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--answerers", default="cosine,extractive-linear,extractive-neural")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "throughput.json")
    args = ap.parse_args()
    # One loopback caller stands in for many clients: the per-caller rate limit would
    # answer most of its requests 429, so it is lifted here.
    settings = Settings(rate_limit_per_minute=1e9, rate_limit_burst=1_000_000)
    questions = [str(r["question"]) for r in bbc_dev_rows(settings)]
    results = []
    for name in args.answerers.split(","):
        engine = Dossier(settings, answerer=build_answerer(settings, name))
        engine.warm_up()
        engine.ask("warm up the model", BBC_COLLECTION)
        with LiveServer(create_app(settings, engine)) as server:
            out = {"answerer": name, "clients": args.clients, "seconds": args.seconds}
            out |= load(server.url, questions, args.clients, args.seconds)
            out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        results.append(out)
        print(json.dumps(out))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
