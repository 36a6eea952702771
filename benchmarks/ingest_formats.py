"""Ingestion throughput by file format, and peak memory on a 200-page PDF.

    python benchmarks/ingest_formats.py [--articles 100] [--pages 200] [--out FILE]

The same ``--articles`` BBC articles (business/, in name order) are written as Markdown,
saved web pages (the tests' news-page template, boilerplate included), PDFs and Word
files, and each set is ingested into its own collection on a temp Chroma dir, in one run:
documents/s for reading alone and for the whole ingest (reading, chunking, embedding,
writing), so the formats compare as ratios. Then one ``--pages``-page PDF is read and
ingested in a fresh subprocess each, whose peak RSS is reported (beside a Markdown file
of the same text). Where pypdf is installed, its reading time and peak RSS on that PDF
are printed beside PDFium's (the reason the PDF reader uses PDFium). Prints and writes
JSON; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dossier.engine import Dossier  # noqa: E402
from dossier.testing import make_settings  # noqa: E402
from ingest.loaders import discover, parse  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402
from tests.documents import docx_bytes, news_page, pdf_bytes  # noqa: E402

BBC = ROOT.parent / "shared" / "benchmarks" / "news-bbc" / "bbc" / "business"


def articles(n: int) -> list[tuple[str, str, list[str]]]:
    out = []
    for path in sorted(BBC.glob("*.txt"))[:n]:
        lines = [ln.strip() for ln in path.read_text("utf-8", errors="replace").splitlines()]
        lines = [ln for ln in lines if ln]
        out.append((path.stem, lines[0], lines[1:]))
    return out


def write_format(folder: Path, fmt: str, items: list[tuple[str, str, list[str]]]) -> None:
    folder.mkdir(parents=True)
    for stem, title, paragraphs in items:
        if fmt == "md":
            body = "\n\n".join(paragraphs)
            text = f"---\ntitle: {json.dumps(title)}\npublished: 2005-01-01\n---\n{body}\n"
            (folder / f"{stem}.md").write_text(text, "utf-8")
        elif fmt == "html":
            page = news_page(
                title=title,
                site="BBC",
                author="BBC News",
                published="2005-01-01",
                url=f"https://news.example.com/{stem}",
                paragraphs=paragraphs,
            )
            (folder / f"{stem}.html").write_text(page, "utf-8")
        elif fmt == "pdf":
            (folder / f"{stem}.pdf").write_bytes(pdf_bytes([paragraphs], title=title))
        else:
            blocks = [("title", title), *(("p", p) for p in paragraphs)]
            (folder / f"{stem}.docx").write_bytes(docx_bytes(blocks, title=title))


def measure_format(tmp: Path, fmt: str, items: list[tuple[str, str, list[str]]]) -> dict[str, Any]:
    folder = tmp / fmt
    write_format(folder, fmt, items)
    files = discover(folder).files
    t0 = time.perf_counter()
    for f in files:
        parse(f.name, f.read_bytes(), 50_000_000)
    read_s = time.perf_counter() - t0
    settings = make_settings(tmp / f"index-{fmt}")
    engine = Dossier(settings)
    report = Ingestor(settings, engine.store, engine.embedder).ingest(folder, f"bench-{fmt}")
    return {
        "documents": len(files),
        "bytes": sum(f.stat().st_size for f in files),
        "read_s": round(read_s, 3),
        "read_docs_per_s": round(len(files) / read_s, 1),
        "ingest_s": round(report.seconds, 2),
        "ingest_docs_per_s": round(len(files) / report.seconds, 1),
        "chunks": report.chunks_total,
        "failed": len(report.failed),
    }


_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
mode, path, tmp = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
if mode == "pypdf":
    import pypdf
    pages = [p.extract_text() for p in pypdf.PdfReader(path).pages]
elif mode == "read":
    from ingest.loaders import load
    raw = load(__import__("pathlib").Path(path), 50_000_000)
else:
    from pathlib import Path
    from dossier.engine import Dossier
    from dossier.testing import make_settings
    from ingest.pipeline import Ingestor
    settings = make_settings(Path(tmp))
    engine = Dossier(settings)
    Ingestor(settings, engine.store, engine.embedder).ingest(Path(path), "bench-big")
seconds = time.perf_counter() - t0
# VmHWM, not ru_maxrss: a forked child's ru_maxrss starts at its parent's peak.
status = open("/proc/self/status").read()
peak = int(status.split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps({{"seconds": round(seconds, 2), "peak_rss_mb": round(peak, 1)}}))
"""


def child(mode: str, path: Path, tmp: Path) -> dict[str, Any] | None:
    code = _CHILD.format(root=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", code, mode, str(path), str(tmp)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(f"  {mode}: failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ingest_formats.json")
    args = parser.parse_args()
    items = articles(args.articles)
    out: dict[str, Any] = {"articles": len(items), "formats": {}}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        # The first ingest of a process loads and warms the embedding model; not a format's cost.
        measure_format(tmp / "warm-up", "md", items[:5])
        for fmt in ("md", "html", "pdf", "docx"):
            row = measure_format(tmp, fmt, items)
            out["formats"][fmt] = row
            print(f"{fmt:5s} {row}")
        base = out["formats"]["md"]["ingest_docs_per_s"]
        for row in out["formats"].values():
            row["ingest_vs_md"] = round(row["ingest_docs_per_s"] / base, 2)

        # One long PDF: each page holds about 3,000 characters of BBC text.
        text = " ".join(p for _, _, ps in items for p in ps)
        per_page = [[text[(i * 3000) % len(text) :][:3000]] for i in range(args.pages)]
        big = tmp / "big" / "report.pdf"
        big.parent.mkdir()
        big.write_bytes(pdf_bytes(per_page, title="A long report"))
        md = tmp / "big-md" / "report.md"
        md.parent.mkdir()
        md.write_text("\n\n".join(p[0] for p in per_page), "utf-8")
        big_row: dict[str, Any] = {
            "pages": args.pages,
            "pdf_mb": round(big.stat().st_size / 1e6, 2),
        }
        for mode, path in (("read", big), ("ingest", big.parent), ("ingest-md", md.parent)):
            big_row[mode] = child("ingest" if mode == "ingest-md" else mode, path, tmp / mode)
        try:
            import pypdf  # noqa: F401  (only to compare; not a dependency)

            big_row["pypdf_read"] = child("pypdf", big, tmp / "pypdf")
        except ImportError:
            big_row["pypdf_read"] = "not installed"
        out["big_pdf"] = big_row
        print(f"big pdf {big_row}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
