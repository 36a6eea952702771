"""What saving sentence vectors at ingest costs: ingest time with and without, in one run.

    python benchmarks/ingest_sentences.py [--articles 300] [--rounds 1] [--out FILE]

Ingests the seed collection and a fixed subset of the BBC corpus (every n-th file in
sorted order, ``--articles`` of them, copied to a temporary folder) into fresh temporary
data directories, once with ``DOSSIER_SENTENCE_VECTORS=false`` (what ingest did before)
and once with it on, with the real embedder (loaded once, and one untimed ingest first).
Prints seconds, the ratio, sentences embedded and the load average around each run (the
machine may be shared: runs are sequential, so compare them knowing the load), and writes
JSON. Asserts nothing. ``--articles 0``: the seed collection only. ``--rounds N``: each
pair N times, alternating which goes first (the median is printed). With vectors on, the
seconds spent on the sentence table (sentence spans and terms, saved with the vectors;
an upper bound, as it includes the splitting the vectors need anyway) are read from the
saved meta.json (``table_seconds``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from dossier.engine import Dossier
from dossier.settings import Settings
from dossier.testing import make_settings
from evals.loaders import BBC_DIR
from ingest.pipeline import Ingestor

ROOT = Path(__file__).resolve().parents[1]


def bbc_subset(settings: Settings, n: int, dest: Path) -> Path:
    source = (settings.shared_dir or ROOT.parent / "shared") / BBC_DIR
    files = sorted(p for p in source.rglob("*.txt"))
    step = max(1, len(files) // n)
    for f in files[::step][:n]:
        target = dest / f.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    return dest


def timed_ingest(folder: Path, collection: str, vectors: bool, engine: Dossier) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(Path(tmp), sentence_vectors=vectors)
        store = Dossier(settings).store
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        report = Ingestor(settings, store, engine.embedder).ingest(folder, collection)
        seconds = time.perf_counter() - t0
        metas = list(settings.lexical_path.glob(f"{collection}/*/sentences/meta.json"))
        meta = json.loads(metas[0].read_text()) if metas else {}
        return {
            "collection": collection,
            "sentence_vectors": vectors,
            "documents": report.added,
            "chunks": report.chunks_embedded,
            "sentences_embedded": report.sentences_embedded,
            "sentence_seconds": round(report.sentence_seconds, 2),
            "table_seconds": meta.get("table_seconds"),
            "table_passages": meta.get("passages"),
            "seconds": round(seconds, 2),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=300, help="0: the seed only")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "ingest_sentences.json"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = Settings()
    engine = Dossier(settings)
    engine.embedder.get_text_embedding("load the model before timing")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"albania-iran": ROOT / "corpus" / "albania-iran"}
        if args.articles:
            sets[f"bbc-{args.articles}"] = bbc_subset(settings, args.articles, Path(tmp) / "bbc")
        # Untimed: the first ingest in a process also loads the sentence splitter and Chroma.
        timed_ingest(sets["albania-iran"], "warm-up", True, engine)
        for name, folder in sets.items():
            ratios = []
            for round_ in range(args.rounds):
                order = (False, True) if round_ % 2 == 0 else (True, False)
                runs = sorted(
                    (timed_ingest(folder, name, v, engine) for v in order),
                    key=lambda r: r["sentence_vectors"],
                )
                ratio = runs[1]["seconds"] / runs[0]["seconds"]
                ratios.append(ratio)
                for r in runs:
                    r["round"] = round_
                    r["with_vs_without"] = round(ratio, 2)
                    print(json.dumps(r))
                results.extend(runs)
            if args.rounds > 1:
                print(f"{name}: with/without median {statistics.median(ratios):.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
