"""Dossier benchmarks: prints a table and writes JSON. Numbers, never assertions.

    python benchmarks/bench.py [--only ingest,ask,squad] [--bbc-limit N] [--out FILE]

* ingest: BBC News (2,225 articles) into a fresh index with the default embedder,
  beside the raw embedder's throughput on the same chunks in the same run, then
  the re-ingest of the unchanged corpus;
* ask: ``/v1/ask`` latency in-process and over loopback HTTP on the BBC + seed
  collections (the BBC index from the ingest step);
* squad: open retrieval over SQuAD 2.0 half A's 301 paragraphs, R@1/R@5/MRR@10
  for BM25, dense and the fused retriever.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dossier.engine import Dossier  # noqa: E402
from dossier.index.embeddings import embed_array  # noqa: E402
from dossier.settings import Settings  # noqa: E402
from dossier.text import indexed_text  # noqa: E402
from ingest.loaders import discover  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402

SHARED = ROOT.parent / "shared" / "benchmarks"
BBC = SHARED / "news-bbc" / "bbc"
SQUAD = SHARED / "squad2-cs224n-dev" / "dev-v2.0-half-a.json"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_ingest(work: Path, limit: int | None) -> dict[str, Any]:
    source = BBC
    if limit:
        # A fixed subset, copied so the ingest sees a plain folder.
        source = work / "bbc-subset"
        for path in discover(BBC).files[:limit]:
            dest = source / path.relative_to(BBC)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(path.read_bytes())
    settings = Settings(_env_file=None, data_dir=work / "index")  # type: ignore[call-arg]
    engine = Dossier(settings)
    ingestor = Ingestor(settings, engine.store, engine.embedder)
    embed_array(engine.embedder, ["warm up"])

    first = ingestor.ingest(source, "bbc")
    # Raw embedder throughput on (a sample of) the very chunks the pipeline embedded.
    passages = engine.store.all_passages("bbc")
    sample = random.Random(0).sample(passages, min(len(passages), 1500))
    texts = [indexed_text(p.title, p.text) for p in sample]
    t0 = time.perf_counter()
    embed_array(engine.embedder, texts)
    raw = len(texts) / (time.perf_counter() - t0)
    unsorted = getattr(engine.embedder, "sort_by_length", None)
    raw_unsorted = None
    if unsorted is not None:
        engine.embedder.sort_by_length = False  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        embed_array(engine.embedder, texts[:500])
        raw_unsorted = 500 / (time.perf_counter() - t0)
        engine.embedder.sort_by_length = True  # type: ignore[attr-defined]

    second = ingestor.ingest(source, "bbc")
    seed = ingestor.ingest(ROOT / "corpus" / "albania-iran", "albania-iran")
    return {
        "documents": first.added,
        "duplicates": len(first.duplicates),
        "failed": len(first.failed),
        "chunks": first.chunks_embedded,
        "ingest_seconds": round(first.seconds, 2),
        "ingest_chunks_per_s": round(first.chunks_per_s, 2),
        "embed_seconds_in_ingest": round(first.embed_seconds, 2),
        "raw_embedder_chunks_per_s": round(raw, 2),
        "raw_embedder_unsorted_chunks_per_s": round(raw_unsorted, 2) if raw_unsorted else None,
        "ingest_vs_raw_ratio": round(first.chunks_per_s / raw, 3),
        "reingest_unchanged_seconds": round(second.seconds, 2),
        "reingest_embedded": second.chunks_embedded,
        "seed_chunks": seed.chunks_embedded,
        "_settings": settings,
    }


def bench_ask(settings: Settings, n: int = 200) -> dict[str, Any]:
    import threading

    import httpx
    import uvicorn

    from service.app import create_app

    engine = Dossier(settings)
    engine.warm_up()
    titles = [d.title for d in engine.documents("bbc")]
    rng = random.Random(1)
    seed_questions = [
        "Why did Albania expel Iranian diplomats?",
        "Which security firm blamed Iran?",
        "What is the capital of France?",
        "When did Albania agree to shelter MEK members?",
    ]
    questions = [(f"What happened: {t}?", "bbc") for t in rng.sample(titles, n // 2)]
    questions += [(q, "albania-iran") for q in seed_questions * (n // 8)]
    for q, c in questions[:10]:
        engine.ask(q, c)
    inproc = []
    for q, c in questions:
        t0 = time.perf_counter()
        engine.ask(q, c)
        inproc.append((time.perf_counter() - t0) * 1000)

    config = uvicorn.Config(
        create_app(settings, engine), host="127.0.0.1", port=0, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    http = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for q, c in questions[:10]:
            client.post("/v1/ask", json={"question": q, "collection": c})
        for q, c in questions:
            t0 = time.perf_counter()
            r = client.post("/v1/ask", json={"question": q, "collection": c})
            http.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
    server.should_exit = True
    thread.join(10)
    return {
        "questions": len(questions),
        "inprocess_p50_ms": round(pct(inproc, 0.5), 2),
        "inprocess_p95_ms": round(pct(inproc, 0.95), 2),
        "http_p50_ms": round(pct(http, 0.5), 2),
        "http_p95_ms": round(pct(http, 0.95), 2),
    }


def bench_squad(work: Path) -> dict[str, Any]:
    from dossier.index.retrieval import HybridRetriever

    data = json.loads(SQUAD.read_text(encoding="utf-8"))
    folder = work / "squad"
    questions: list[tuple[str, str]] = []
    for a, article in enumerate(data["data"]):
        for p, para in enumerate(article["paragraphs"]):
            name = f"a{a:02d}-p{p:03d}.md"
            title = json.dumps(article["title"].replace("_", " "))
            body = f"---\ntitle: {title}\n---\n{para['context']}\n"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(body, encoding="utf-8")
            questions += [(qa["question"], name) for qa in para["qas"] if not qa["is_impossible"]]
    settings = Settings(_env_file=None, data_dir=work / "squad-index")  # type: ignore[call-arg]
    engine = Dossier(settings)
    Ingestor(settings, engine.store, engine.embedder).ingest(folder, "squad")
    path_of = {d.doc_id: d.source_path for d in engine.documents("squad")}
    vectors = embed_array(engine.embedder, [q for q, _ in questions])

    def evaluate(rank: Any) -> dict[str, float]:
        r1 = r5 = r10 = mrr = 0.0
        for i, (q, gold) in enumerate(questions):
            docs: list[str] = []
            for sp in rank(q, vectors[i]):
                d = path_of[sp.passage.doc_id]
                if d not in docs:
                    docs.append(d)
            if gold in docs[:1]:
                r1 += 1
            if gold in docs[:5]:
                r5 += 1
            if gold in docs[:10]:
                r10 += 1
                mrr += 1 / (docs.index(gold) + 1)
        n = len(questions)
        return {
            "R@1": round(r1 / n, 3),
            "R@5": round(r5 / n, 3),
            "R@10": round(r10 / n, 3),
            "MRR@10": round(mrr / n, 3),
        }

    depth = 40
    results: dict[str, Any] = {"questions": len(questions)}
    results["bm25"] = evaluate(lambda q, v: engine.lexical.retrieve(q, "squad", depth))
    results["dense"] = evaluate(lambda q, v: engine.dense.retrieve_vector(v, "squad", depth))
    # Each fusion at the default weight without sentence re-scoring, then the default
    # retriever (z-score fusion + sentence re-scoring), side by side in one run.
    weight = engine.settings.dense_weight
    for fusion in ("rrf", "relative", "zscore"):
        hybrid = HybridRetriever(
            engine.dense,
            engine.lexical,
            dense_weight=weight,
            candidate_k=depth,
            fusion=fusion,
            rerank_weight=0,
        )
        results[f"fused-{fusion}-w{weight}"] = evaluate(
            lambda q, v, h=hybrid: h.retrieve_with_vector(q, v, "squad", depth)
        )
    default = engine.retriever
    results["default"] = (
        f"{default.fuse.__name__} w={default.dense_weight} + sentence re-scoring "
        f"x{default.rerank_weight} over the top {default.rerank_depth}"
    )
    results["fused_default"] = evaluate(
        lambda q, v: default.retrieve_with_vector(q, v, "squad", depth)
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="ingest,ask,squad")
    parser.add_argument(
        "--bbc-limit", type=int, default=None, help="Ingest only the first N BBC files."
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    only = set(args.only.split(","))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "ingest" in only or "ask" in only:
            ingest = bench_ingest(work, args.bbc_limit)
            settings = ingest.pop("_settings")
            results["ingest"] = ingest
            print(json.dumps({"ingest": ingest}, indent=2), flush=True)
            if "ask" in only:
                results["ask"] = bench_ask(settings)
                print(json.dumps({"ask": results["ask"]}, indent=2), flush=True)
        if "squad" in only:
            results["squad"] = bench_squad(work)
            print(json.dumps({"squad": results["squad"]}, indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print("\n| metric | value |\n|---|---|")
    for section, values in results.items():
        for key, value in values.items():
            print(f"| {section}.{key} | {value} |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
