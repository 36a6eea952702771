"""Issue #10 goals that are numbers: key-check timing and HTTP vs CLI ingestion.

    python benchmarks/service_goals.py [--only timing,ingest] [--limit N] [--out FILE]

* timing: medians of a wrong key (unknown id) and a right-prefix key (right id, wrong
  secret) in-process (KeyStore.verify) and over loopback HTTP, interleaved, beside the
  trivial baseline of an unauthenticated /healthz in the same run;
* ingest: the BBC corpus (or its first N files) through ``dossier ingest``'s Ingestor and
  through ``POST /v1/collections/{name}/files`` (batches of 100, background jobs) into
  two fresh indexes with the default embedder: chunk counts, seconds, docs/s, the ratio;
  then the same files posted again (chunks embedded must be 0).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from dossier.engine import Dossier  # noqa: E402
from dossier.testing import LiveServer, make_settings  # noqa: E402
from ingest.loaders import discover  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402
from service.app import create_app  # noqa: E402
from service.keys import KEYS_FILE, KeyStore  # noqa: E402

BBC = ROOT.parent / "shared" / "benchmarks" / "news-bbc" / "bbc"


def _median_us(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e6, 1)


def timing(n: int = 2000) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp())
    settings = make_settings(
        tmp,
        store="memory",
        embedder="hashing",
        auth=True,
        rate_limit_per_minute=1e9,
        rate_limit_burst=10**9,
    )
    keys = KeyStore(settings.data_dir / KEYS_FILE)
    _, token = keys.create("bench", "*", "read")
    key_id = token.split("_")[1]
    wrong = "dsk_0123456789ab_" + "x" * 43
    right_prefix = f"dsk_{key_id}_" + "x" * 43
    inproc: dict[str, list[float]] = {"wrong": [], "right_prefix": []}
    for _ in range(n):
        for name, tok in (("wrong", wrong), ("right_prefix", right_prefix)):
            t = time.perf_counter()
            keys.verify(tok)
            inproc[name].append(time.perf_counter() - t)
    http: dict[str, list[float]] = {"wrong": [], "right_prefix": [], "healthz_baseline": []}
    with (
        LiveServer(create_app(settings, Dossier(settings))) as live,
        httpx.Client(base_url=live.url) as c,
    ):
        for _ in range(n // 4):
            for name, tok in (("wrong", wrong), ("right_prefix", right_prefix)):
                t = time.perf_counter()
                r = c.get("/v1/collections", headers={"Authorization": f"Bearer {tok}"})
                http[name].append(time.perf_counter() - t)
                assert r.status_code == 401
            t = time.perf_counter()
            c.get("/healthz")
            http["healthz_baseline"].append(time.perf_counter() - t)
    out = {
        "in_process_median_us": {k: _median_us(v) for k, v in inproc.items()},
        "http_median_us": {k: _median_us(v) for k, v in http.items()},
        "n_in_process": n,
        "n_http": n // 4,
    }
    ip = out["in_process_median_us"]
    out["in_process_ratio_right_prefix_over_wrong"] = round(ip["right_prefix"] / ip["wrong"], 3)
    hp = out["http_median_us"]
    out["http_ratio_right_prefix_over_wrong"] = round(hp["right_prefix"] / hp["wrong"], 3)
    return out


def ingest(limit: int | None, batch: int = 100) -> dict[str, Any]:
    files = discover(BBC).files[:limit] if limit else discover(BBC).files
    tmp = Path(tempfile.mkdtemp())
    folder = tmp / "bbc"
    for f in files:  # a folder with just these files, so both paths see the same set
        dest = folder / f.relative_to(BBC)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(f.read_bytes())

    cli_settings = make_settings(tmp / "cli")
    cli_engine = Dossier(cli_settings)
    cli_engine.embedder.get_text_embedding("warm up")
    t = time.perf_counter()
    cli = Ingestor(cli_settings, cli_engine.store, cli_engine.embedder).ingest(folder, "bbc")
    cli_s = time.perf_counter() - t

    http_settings = make_settings(tmp / "http", ingest_sync_max_documents=batch - 1)
    engine = Dossier(http_settings)
    engine.embedder.get_text_embedding("warm up")
    paths = sorted(p for p in folder.rglob("*.txt"))

    def post_all(c: httpx.Client) -> list[dict[str, Any]]:
        jobs = []
        for start in range(0, len(paths), batch):
            part = paths[start : start + batch]
            r = c.post(
                "/v1/collections/bbc/files",
                files=[("files", (p.relative_to(folder).as_posix(), p.read_bytes())) for p in part],
            )
            r.raise_for_status()
            jobs.append(r.headers.get("location") or r.json())
        results = []
        for job in jobs:
            if isinstance(job, dict):
                results.append(job)
                continue
            while (j := c.get(job).json())["status"] not in ("done", "failed"):
                time.sleep(0.2)
            results.append(j["result"])
        return results

    with (
        LiveServer(create_app(http_settings, engine)) as live,
        httpx.Client(base_url=live.url, timeout=600) as c,
    ):
        t = time.perf_counter()
        first = post_all(c)
        http_s = time.perf_counter() - t
        t = time.perf_counter()
        again = post_all(c)
        again_s = time.perf_counter() - t
        chunks_http = c.get("/v1/collections").json()[0]["chunks"]
    return {
        "documents": len(files),
        "cli": {
            "chunks": cli.chunks_total,
            "seconds": round(cli_s, 2),
            "docs_per_s": round(len(files) / cli_s, 1),
        },
        "http": {
            "chunks": chunks_http,
            "seconds": round(http_s, 2),
            "docs_per_s": round(len(files) / http_s, 1),
            "added": sum(r["added"] for r in first),
            "failed": sum(len(r["failed"]) for r in first),
        },
        "throughput_ratio_http_over_cli": round(cli_s / http_s, 3),
        "repost_unchanged": {
            "seconds": round(again_s, 2),
            "chunks_embedded": sum(r["chunks_embedded"] for r in again),
            "unchanged": sum(r["unchanged"] for r in again),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="timing,ingest")
    parser.add_argument("--limit", type=int, default=None, help="First N BBC files only.")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "service.json"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if "timing" in args.only:
        results["timing"] = timing()
        print(json.dumps({"timing": results["timing"]}, indent=2), flush=True)
    if "ingest" in args.only:
        results["ingest"] = ingest(args.limit)
        print(json.dumps({"ingest": results["ingest"]}, indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
