"""Scale benchmark: ingest and serve 10k / 30k / 100k passages, 1 / 2 / 4 workers.

    python benchmarks/scale.py [--sizes 10000,30000,100000] [--workers 1,2,4]
                               [--clients 50] [--seconds 15] [--skip-bbc] [--out FILE]

Prints numbers and writes JSON; asserts nothing. Per collection size (BBC News articles
copied with an edition mark until the collection holds about that many passages, hashing
embedder so ingestion takes minutes, not hours):

* ingest passages/s (new passages only, saving the BM25 index included);
* server start-to-ready (``dossier serve`` until /healthz answers; warm-up included), the
  first ``/v1/ask`` after that, then warm p50/p95 over HTTP, one client;
* RSS and PSS per worker process (PSS splits the pages the workers share, e.g. the mapped
  BM25 index);
* requests/s, p50/p95 and errors with ``--clients`` concurrent clients, for each worker count.

The baseline, in the same run: the same server made to rebuild its BM25 index in memory
from the store at start (what Dossier did before indexes were saved), 1 worker.

Plus the real embedder on the BBC collection (6.8k passages; indexed once into
``.dossier/bench-bbc`` and reused). The load generator runs in this process, on the same
cores as the servers: on 2 cores it takes a share of the CPU the workers could use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from dossier.engine import Dossier  # noqa: E402
from dossier.settings import Settings  # noqa: E402
from ingest.loaders import discover  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402

BBC = ROOT.parent / "shared" / "benchmarks" / "news-bbc" / "bbc"
BBC_DATA = ROOT / ".dossier" / "bench-bbc"
DOSSIER = Path(sys.executable).parent / "dossier"
COLLECTION = "scale"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def questions() -> list[str]:
    """Questions from BBC titles: varied terms, so no answer is served from a warm cache."""
    titles = [p.read_text(errors="replace").split("\n", 1)[0].strip() for p in discover(BBC)]
    random.Random(0).shuffle(titles)
    return [f"What happened: {t}?" for t in titles[:400] if t]


# -- corpus and ingest -------------------------------------------------------------
class Corpus:
    """BBC articles, copied with an edition mark (distinct text, so none is a duplicate)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sources = [p for p in discover(BBC) if p.suffix == ".txt" and p.parent != BBC]
        self.written = 0

    def grow(self, articles: int) -> None:
        while self.written < articles:
            n, i = divmod(self.written, len(self.sources))
            src = self.sources[i]
            title, _, body = src.read_text(errors="replace").partition("\n")
            dest = self.folder / f"ed{n:03d}" / src.parent.name / src.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(f"{title.strip()} (edition {n})\n{body}\nEdition {n}.\n")
            self.written += 1


def ingest_to(settings: Settings, corpus: Corpus, target: int, engine: Dossier) -> dict[str, Any]:
    ingestor = Ingestor(settings, engine.store, engine.embedder)
    have = sum(c.chunks for c in engine.store.list_collections() if c.name == COLLECTION)
    per_article = have / corpus.written if corpus.written else 3.0
    corpus.grow(corpus.written + max(1, round((target - have) / per_article)))
    report = ingestor.ingest(corpus.folder, COLLECTION)
    version = engine.store.version(COLLECTION)
    saved = next((settings.lexical_path / COLLECTION).glob(f"v{version}-*"))
    lexical = json.loads((saved / "meta.json").read_text())
    return {
        "passages": report.chunks_total,
        "articles": corpus.written,
        "disk_mb": {
            "chroma": du_mb(settings.chroma_path),
            "bm25_index": du_mb(saved),
        },
        "new_passages": report.chunks_embedded,
        "ingest_s": round(report.seconds, 2),
        "ingest_passages_per_s": round(report.chunks_per_s, 1),
        "bm25_save_s": lexical["build_seconds"],
        "in_process": warm_up_parts(settings),
    }


def warm_up_parts(settings: Settings) -> dict[str, float]:
    """A server's start without its imports: a fresh engine in this process (modules loaded)."""
    from dossier.index.embeddings import build_embedder

    engine = Dossier(settings.model_copy(update={"default_collection": COLLECTION}))
    engine._embedder = build_embedder(settings)
    t0 = time.perf_counter()
    engine.lexical.index(COLLECTION)
    t1 = time.perf_counter()
    engine.search("warm up the vector index", COLLECTION, 1)
    t2 = time.perf_counter()
    return {
        "bm25_load_ms": round((t1 - t0) * 1000, 1),
        "first_search_ms": round((t2 - t1) * 1000, 1),
    }


def du_mb(folder: Path) -> float:
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return round(total / 2**20, 1)


# -- servers -------------------------------------------------------------------------
def mem_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


class Server:
    def __init__(self, data_dir: Path, env: dict[str, str], workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_")}
        self.env.update(env, DOSSIER_DATA_DIR=str(data_dir))
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115

    def __enter__(self) -> Server:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [str(DOSSIER), "serve", "--port", str(self.port), "--workers", str(self.workers)],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline_s = 300
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).is_success:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()  # __exit__ does not run when __enter__ raises
                raise RuntimeError(f"server did not start in {deadline_s} s")
            time.sleep(0.02)
        self.ready_s = time.perf_counter() - self.started
        # Every worker must be up before the load starts: collect their pids.
        self.pids: set[int] = set()
        while len(self.pids) < self.workers and time.monotonic() < deadline:
            with httpx.Client(timeout=10) as client:
                self.pids.add(int(client.get(self.url + "/healthz").headers["x-dossier-worker"]))
        return self

    def memory(self) -> list[tuple[int, int]]:
        return [mem_kb(pid) for pid in sorted(self.pids)]

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


def propagation(server: Server, ingest_one: Callable[[str], float]) -> dict[str, Any]:
    """Ingest one new article in this process; time until every worker answers with it."""
    marker = f"quokka{random.randrange(10**9)}"
    ingest_s = ingest_one(marker)
    done = time.perf_counter()
    pending = set(server.pids)
    while pending and time.perf_counter() - done < 60:
        with httpx.Client(timeout=30) as client:  # new connections reach every worker
            r = client.get(server.url + "/v1/search", params={"q": marker, "k": 50})
        # Found by BM25: the worker maps the new version. (The hashing embedder's vectors
        # do not rank it among 100k; tests/test_workers.py checks the vector side.)
        if any(marker in p["text"] and p["lexical_score"] for p in r.json()["passages"]):
            pending.discard(int(r.headers["x-dossier-worker"]))
    return {
        "ingest_one_article_s": round(ingest_s, 2),
        "all_workers_answer_after_s": round(time.perf_counter() - done, 2) if not pending else None,
    }


def ask(client: httpx.Client, url: str, question: str) -> float:
    t0 = time.perf_counter()
    response = client.post(url + "/v1/ask", json={"question": question})
    response.raise_for_status()
    return (time.perf_counter() - t0) * 1000


async def load(url: str, qs: list[str], clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}
    stop = time.perf_counter() + seconds

    async def client_loop(n: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        i = n
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                r = await http.post(url + "/v1/ask", json={"question": qs[i % len(qs)]})
                if r.status_code == 200:
                    latencies.append((time.perf_counter() - t0) * 1000)
                else:
                    errors += 1
                    kind = f"{r.status_code}: {r.text[:120]}"
                    kinds[kind] = kinds.get(kind, 0) + 1
            except httpx.HTTPError as exc:
                errors += 1
                kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
            i += clients

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client_loop(n, http) for n in range(clients)))
        elapsed = time.perf_counter() - t0
    return {
        "requests": len(latencies),
        "errors": errors,
        "error_kinds": kinds,
        "req_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(pct(latencies, 0.5), 1),
        "p95_ms": round(pct(latencies, 0.95), 1),
    }


def measure(
    data_dir: Path,
    env: dict[str, str],
    qs: list[str],
    workers: list[int],
    clients: int,
    seconds: float,
    baseline_dir: Path | None,
    ingest_one: Callable[[str], float] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    runs = [("baseline", baseline_dir, 1)] if baseline_dir else []
    runs += [(f"{w}w", data_dir, w) for w in workers]
    for label, folder, w in runs:
        assert folder is not None
        with Server(folder, env, w) as server, httpx.Client(timeout=120) as client:
            row: dict[str, Any] = {"workers": w, "start_to_ready_s": round(server.ready_s, 2)}
            row["first_ask_ms"] = round(ask(client, server.url, qs[0]), 1)
            warm = [ask(client, server.url, q) for q in qs[1:51]]
            row["warm_p50_ms"] = round(pct(warm, 0.5), 1)
            row["warm_p95_ms"] = round(pct(warm, 0.95), 1)
            if label != "baseline":  # the 1-worker row is the old process model's throughput
                row["load"] = asyncio.run(load(server.url, qs, clients, seconds))
            if ingest_one is not None and w == max(workers) and w > 1:
                row["after_ingest"] = propagation(server, ingest_one)
            mem = server.memory()
            row["rss_mb_per_worker"] = [round(r / 1024) for r, _ in mem]
            row["pss_mb_per_worker"] = [round(p / 1024) for _, p in mem]
        out[label] = row
        print(f"    {label}: {json.dumps(row)}", flush=True)
    return out


def baseline_copy(data_dir: Path, work: Path) -> Path:
    """The same Chroma data, with no saved BM25 index and nowhere to save one."""
    folder = work / "baseline"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "chroma"
    if not link.exists():
        link.symlink_to((data_dir / "chroma").resolve())
    # A file where the index folder would be: saving fails, so the server keeps the
    # index it rebuilt in memory, as before indexes were saved.
    (folder / "lexical").touch()
    return folder


# -- report --------------------------------------------------------------------------
def adder(corpus: Corpus) -> Callable[[str], float]:
    settings = Settings(_env_file=None, data_dir=corpus.folder.parent / "index", embedder="hashing")  # type: ignore[call-arg]

    def ingest_one(marker: str) -> float:
        engine = Dossier(settings)
        path = corpus.folder / "extra" / f"{marker}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"A {marker} sighting\n\nA {marker} was seen near the river.\n")
        t0 = time.perf_counter()
        Ingestor(settings, engine.store, engine.embedder).ingest(corpus.folder, COLLECTION)
        return time.perf_counter() - t0

    return ingest_one


def table(results: dict[str, Any], workers: list[int]) -> str:
    head = (
        f"{'collection':<14}{'passages':>9}{'ingest/s':>9}{'ready s':>8}{'1st ms':>8}"
        f"{'p50 ms':>8}{'p95 ms':>8}{'RSS MB':>8}{'PSS MB':>8}"
        + "".join(f"{f'{w}w req/s':>10}{'p95':>7}" for w in workers)
        + f"{'errors':>7}{'upd s':>7}{'seen s':>7}"
    )
    notes = (
        "old: the same server rebuilding BM25 in memory at start (before indexes were saved); "
        f"upd s: ingest of one new article; seen s: until all {max(workers)} workers answer with it"
    )
    lines = [head, "-" * len(head)]
    for name, res in results.items():
        for label, row in res["servers"].items():
            if label not in ("baseline", f"{workers[0]}w"):
                continue
            load_cols = ""
            errors = 0
            for w in workers:
                r = res["servers"].get(f"{w}w", {}).get("load") if label != "baseline" else None
                if r:
                    errors += r["errors"]
                    load_cols += f"{r['req_per_s']:>10}{r['p95_ms']:>7.0f}"
                else:
                    load_cols += f"{'':>10}{'':>7}"
            after = res["servers"].get(f"{max(workers)}w", {}).get("after_ingest") or {}
            update = "" if label == "baseline" else after.get("ingest_one_article_s", "")
            seen = "" if label == "baseline" else after.get("all_workers_answer_after_s", "")
            tag = f"{name} (old)" if label == "baseline" else name
            ingest_rate = res.get("ingest", {}).get("ingest_passages_per_s", "")
            lines.append(
                f"{tag:<14}{res['passages']:>9}{ingest_rate if label != 'baseline' else '':>9}"
                f"{row['start_to_ready_s']:>8}{row['first_ask_ms']:>8}{row['warm_p50_ms']:>8}"
                f"{row['warm_p95_ms']:>8}{max(row['rss_mb_per_worker']):>8}"
                f"{max(row['pss_mb_per_worker']):>8}{load_cols}{errors:>7}{update:>7}{seen!s:>7}"
            )
    return "\n".join([*lines, notes])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,30000,100000")
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--skip-bbc", action="store_true")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--work", type=Path, help="Keep the indexes here (default: a temp dir).")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    workers = [int(w) for w in args.workers.split(",")]
    qs = questions()
    results: dict[str, Any] = {}
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="dossier-scale-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data_dir = work / "index"
        env = {"DOSSIER_EMBEDDER": "hashing", "DOSSIER_DEFAULT_COLLECTION": COLLECTION}
        settings = Settings(_env_file=None, data_dir=data_dir, embedder="hashing")  # type: ignore[call-arg]
        engine = Dossier(settings)
        corpus = Corpus(work / "articles")
        for size in sizes:
            print(f"== {size:,} passages (hashing embedder)", flush=True)
            ingest = ingest_to(settings, corpus, size, engine)
            print(f"    ingest: {json.dumps(ingest)}", flush=True)
            baseline = None if args.no_baseline else baseline_copy(data_dir, work)
            servers = measure(
                data_dir, env, qs, workers, args.clients, args.seconds, baseline, adder(corpus)
            )
            results[f"{size // 1000}k"] = {
                "passages": ingest["passages"],
                "embedder": "hashing",
                "ingest": ingest,
                "servers": servers,
            }

        if not args.skip_bbc:
            print("== BBC (real embedder: all-MiniLM-L6-v2 int8 ONNX)", flush=True)
            bbc_settings = Settings(_env_file=None, data_dir=BBC_DATA)  # type: ignore[call-arg]
            bbc_engine = Dossier(bbc_settings)
            t0 = time.perf_counter()
            report = Ingestor(bbc_settings, bbc_engine.store, bbc_engine.embedder).ingest(
                BBC, "bbc"
            )
            bbc: dict[str, Any] = {
                "passages": report.chunks_total,
                "embedder": "minilm-onnx",
                "ingest": {
                    "note": "indexed once and reused; this run only checked it",
                    "check_s": round(time.perf_counter() - t0, 2),
                },
            }
            baseline = None if args.no_baseline else baseline_copy(BBC_DATA, work / "bbc")
            bbc["servers"] = measure(
                BBC_DATA,
                {"DOSSIER_DEFAULT_COLLECTION": "bbc"},
                qs,
                workers,
                args.clients,
                args.seconds,
                baseline,
            )
            results["bbc"] = bbc

    print()
    print(table(results, workers))
    payload = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_at_end": os.getloadavg(),
        },
        "clients": args.clients,
        "seconds_per_load": args.seconds,
        "total_s": round(time.perf_counter() - started, 1),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {args.out} ({payload['total_s']} s)")


if __name__ == "__main__":
    main()
