"""What conflict detection costs: ``/v1/ask`` latency with it on and off, in one run.

    python benchmarks/conflicts_latency.py [--articles 120] [--rounds 3] [--whole-corpus]
        [--out FILE]

Ingests the first ``--articles`` BBC articles of ``bbc-qa-dev/train-articles.txt`` into a
temporary directory (the default embedder and answerer), and for a tenth of them also a
copy under another publisher with one figure changed (the rule of ``evals/conflicts.py``),
so some answers do have sources that disagree; ``--whole-corpus`` ingests every other BBC
article too (2,225 in all: the collection as served). The questions are the articles'
headlines, and for each changed copy the original's sentence holding the figure. Two
servers share the one engine's store and embedder, one with
``DOSSIER_CONFLICT_DETECTION`` on and one off; each question is asked of both back to
back (alternating which goes first) after an untimed pass, so a shared machine's load
drift stays out of the paired difference. Prints p50/p95 of each, the median paired
difference, and how many answers were flagged.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from dossier.engine import Dossier
from dossier.testing import LiveServer, make_settings
from dossier.text import sentence_spans
from dossier.verify.conflicts import values
from evals.conflicts import SALT, TRAIN_LIST, changed, read_article
from evals.loaders import BBC_DIR, shared_dir
from ingest.pipeline import Ingestor
from service.app import create_app

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = "bbc-sample"


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q * 100)) if xs else float("nan")


def write_corpus(folder: Path, articles: list[str], root: Path, whole: bool = False) -> list[str]:
    """The articles (and some changed copies) as files; returns the questions."""
    questions = []
    if whole:
        for path in sorted(root.glob("*/*.txt")):
            a = path.relative_to(root).as_posix()
            (folder / a.replace("/", "-")).write_text(read_article(path), encoding="utf-8")
    for i, a in enumerate(articles):
        text = read_article(root / a)
        title = text.split("\n", 1)[0].strip()
        questions.append(title)
        name = a.replace("/", "-")
        (folder / name).write_text(text, encoding="utf-8")
        if i % 10:
            continue
        rng = random.Random(f"{SALT}:{a}")
        vals = [v for v in values(text) if changed(v.text, random.Random(0))]
        if not vals:
            continue
        v = rng.choice(vals)
        new = changed(v.text, rng) or v.text
        # The sentence holding the changed figure is asked too, so some answers are flagged.
        questions += [text[s:e] for s, e in sentence_spans(text) if s <= v.start < e]
        front = "---\npublisher: Wire Service\npublished: '2005-06-01'\n---\n"
        (folder / f"copy-{name}").write_text(
            front + text[: v.start] + new + text[v.end :], encoding="utf-8"
        )
    return questions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--articles", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--whole-corpus", action="store_true", help="all 2,225 BBC articles")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/conflicts_latency.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(Path(tmp), ROOT / "corpus")
        settings = settings.model_copy(
            update={"rate_limit_per_minute": 1e9, "default_collection": COLLECTION}
        )
        root = shared_dir(settings)
        listed = (root / TRAIN_LIST).read_text(encoding="utf-8").split()
        folder = Path(tmp) / "articles"
        folder.mkdir()
        questions = write_corpus(folder, listed[: args.articles], root / BBC_DIR, args.whole_corpus)
        documents = len(list(folder.iterdir()))
        on = Dossier(settings.model_copy(update={"conflict_detection": True}))
        t0 = time.perf_counter()
        Ingestor(on.settings, on.store, on.embedder).ingest(folder, COLLECTION)
        ingest_s = time.perf_counter() - t0
        off = Dossier(
            settings.model_copy(update={"conflict_detection": False}),
            store=on.store,
            embedder=on.embedder,
        )
        times: dict[str, list[float]] = {"on": [], "off": []}
        flagged = 0
        load_before = os.getloadavg()
        with (
            LiveServer(create_app(on.settings, on)) as s_on,
            LiveServer(create_app(off.settings, off)) as s_off,
            httpx.Client(timeout=120) as client,
        ):
            urls = {"on": s_on.url, "off": s_off.url}
            for r in range(args.rounds + 1):  # round 0 warms both and is not kept
                for i, q in enumerate(questions):
                    order = ["on", "off"] if (i + r) % 2 == 0 else ["off", "on"]
                    for name in order:
                        t = time.perf_counter()
                        resp = client.post(
                            f"{urls[name]}/v1/ask", json={"question": q, "collection": COLLECTION}
                        )
                        elapsed = (time.perf_counter() - t) * 1000
                        resp.raise_for_status()
                        if r > 0:
                            times[name].append(elapsed)
                        if r == 1 and name == "on":
                            flagged += bool(resp.json()["conflicts"])
        load_after = os.getloadavg()
    paired = [a - b for a, b in zip(times["on"], times["off"], strict=True)]
    out: dict[str, Any] = {
        "articles": args.articles,
        "whole_corpus": args.whole_corpus,
        "documents": documents,
        "questions": len(questions),
        "rounds": args.rounds,
        "answers_flagged": flagged,
        "ingest_s": round(ingest_s, 1),
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        **{f"{k}_p50_ms": round(pct(v, 0.5), 2) for k, v in times.items()},
        **{f"{k}_p95_ms": round(pct(v, 0.95), 2) for k, v in times.items()},
        "paired_diff_p50_ms": round(pct(paired, 0.5), 2),
        "paired_diff_p95_ms": round(pct(paired, 0.95), 2),
    }
    print(json.dumps(out, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
