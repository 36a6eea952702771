"""A folder of 50 good articles and every kind of bad file, through the real CLI.

The ingest runs as a subprocess (Chroma on a temp dir, the hashing embedder for speed)
so its peak RSS can be read from the kernel's accounting of the child.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dossier.engine import Dossier
from ingest.chunking import MAX_BLOCK_CHARS, Chunker, blocks
from ingest.loaders import decode, discover
from tests.conftest import make_settings

TOPICS = ["harbour", "election", "drought", "railway", "vaccine", "festival", "glacier", "court"]
CITIES = ["Tirana", "Oslo", "Lima", "Hanoi", "Accra", "Quito", "Perth", "Riga", "Pune", "Cork"]
GOOD = 50
MB = 1_000_000


def good_article(i: int) -> str:
    topic, city = TOPICS[i % len(TOPICS)], CITIES[i % len(CITIES)]
    return (
        f"---\ntitle: Report {i} on the {topic} in {city}\npublisher: Test Wire\n"
        f"published: 2024-01-{1 + i % 28:02d}\n---\n"
        f"Report {i} on the {topic} in {city}\n\n"
        f"Officials in {city} said on day {i} that the {topic} had drawn {i * 37} visitors. "
        f"The mayor called case number {i} a turning point for the region. "
        f"Residents asked for {i % 9 + 2} more inspections before winter.\n"
    )


def words_without_breaks(n_bytes: int, seed: int) -> str:
    rng = random.Random(seed)
    vocab = [f"{a}{b}" for a in ("ka", "lo", "mi", "ne", "su") for b in ("ra", "te", "vo", "zi")]
    out: list[str] = []
    size = 0
    while size < n_bytes:
        word = rng.choice(vocab)
        out.append(word)
        size += len(word) + 1
    return " ".join(out)


def build_folder(root: Path, outside: Path) -> dict[str, str]:
    """The folder, and each bad file's expected outcome: 'skipped', 'failed' or 'added'."""
    root.mkdir(parents=True)
    outside.mkdir(parents=True)
    for i in range(GOOD):
        (root / f"good-{i:02d}.md").write_text(good_article(i), encoding="utf-8")
    (root / "no-breaks-10mb.txt").write_text(words_without_breaks(10 * MB, 1), encoding="utf-8")
    (root / "single-line-1mb.txt").write_text(
        "One long line\n\n" + words_without_breaks(1 * MB, 2), encoding="utf-8"
    )
    (root / "random-bytes.txt").write_bytes(random.Random(3).randbytes(200_000))
    (root / "nul-laced.txt").write_bytes(b"Headline\n\nSome text\x00with\x00NUL bytes.\n" * 50)
    (root / "empty.md").write_text("", encoding="utf-8")
    (root / "bad-front-matter.md").write_text(
        "---\ntitle: [unclosed\n---\nBody text.\n", encoding="utf-8"
    )
    (root / "invalid.html").write_text("<html><script>var x = '<<<", encoding="utf-8")
    (outside / "secret.txt").write_text("Secret\n\nNot part of the corpus.\n", encoding="utf-8")
    (root / "passwd.txt").symlink_to("/etc/passwd")
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    return {
        "no-breaks-10mb.txt": "skipped",
        "single-line-1mb.txt": "added",
        "random-bytes.txt": "failed",
        "nul-laced.txt": "failed",
        "empty.md": "failed",
        "bad-front-matter.md": "failed",
        "invalid.html": "failed",
        "passwd.txt": "skipped",
        "elsewhere": "skipped",
    }


# Runs the command as its only child and reports that child's peak RSS: the test process's
# own RUSAGE_CHILDREN is the largest of *all* its children so far, so a bigger child of an
# earlier test would be measured instead of this one.
_PEAK_OF_ONE_CHILD = """
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
sys.stderr.write(f"\\npeak-rss-kib={peak}\\n")
sys.exit(rc)
"""


def run_ingest(
    folder: Path, data_dir: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run `dossier ingest` in a child; returns it and the child's peak RSS in bytes."""
    cli = [sys.executable, "-m", "service.cli", "ingest", str(folder), "--collection", "bad"]
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK_OF_ONE_CHILD, *cli],
        env={
            **os.environ,
            "DOSSIER_DATA_DIR": str(data_dir),
            "DOSSIER_EMBEDDER": "hashing",
            "CI": "1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    found = re.findall(r"^peak-rss-kib=(\d+)$", proc.stderr, re.MULTILINE)
    assert found, proc.stderr
    return proc, int(found[-1]) * 1024


@pytest.mark.slow
def test_bad_files_are_reported_and_the_good_ones_indexed(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    expected = build_folder(folder, tmp_path / "outside")
    proc, peak = run_ingest(folder, tmp_path / "index")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    print(f"peak RSS of the ingest: {peak / 2**20:.0f} MiB")  # shown with -s; see README
    assert peak < 2**30
    assert f"{GOOD + 1} added" in out
    assert "5 failed, 3 skipped" in out
    for name, outcome in expected.items():
        if outcome == "added":
            continue
        line = next(ln for ln in out.splitlines() if name in ln)
        assert line.lstrip().startswith(f"{outcome}:"), line
    assert "binary content" in next(ln for ln in out.splitlines() if "random-bytes" in ln)
    assert "NUL" in next(ln for ln in out.splitlines() if "nul-laced" in ln)
    assert "limit" in next(ln for ln in out.splitlines() if "no-breaks" in ln)
    assert "outside" in next(ln for ln in out.splitlines() if "passwd" in ln)

    engine = Dossier(make_settings(tmp_path, embedder="hashing"))
    docs = engine.store.documents("bad")
    paths = {d.source_path for d in docs.values()}
    assert {f"good-{i:02d}.md" for i in range(GOOD)} <= paths
    assert paths == {f"good-{i:02d}.md" for i in range(GOOD)} | {"single-line-1mb.txt"}
    for p in engine.store.all_passages("bad"):
        assert "root:" not in p.text and "Secret" not in p.text


@pytest.mark.slow
def test_ten_megabytes_without_sentence_breaks_chunk_in_bounded_memory(tmp_path: Path) -> None:
    """With the size limit raised, the 10 MB file is chunked, embedded and stored."""
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "no-breaks-10mb.txt").write_text(words_without_breaks(10 * MB, 1), encoding="utf-8")
    proc, peak = run_ingest(folder, tmp_path / "index", DOSSIER_INGEST_MAX_FILE_MB="12")
    assert proc.returncode == 0, proc.stderr
    assert "1 added" in proc.stdout
    print(f"peak RSS of the 10 MB ingest: {peak / 2**20:.0f} MiB")
    assert peak < 2**30


def test_blocks_cover_the_text_in_order_and_stay_bounded() -> None:
    text = ("para " * 3000 + "\n\n") * 30 + "x" * (3 * MAX_BLOCK_CHARS)
    spans = list(blocks(text))
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all(0 < end - start <= MAX_BLOCK_CHARS for start, end in spans)
    short = "An ordinary article.\n\nTwo paragraphs."
    assert list(blocks(short)) == [(0, len(short))]


def test_chunk_offsets_stay_exact_across_blocks() -> None:
    from dossier.models import Document

    text = words_without_breaks(3 * MAX_BLOCK_CHARS, 4)
    doc = Document("d", "c", "p.txt", "T", text, "h")
    passages = Chunker(200, 30).chunk(doc)
    assert passages and all(text[p.start : p.end] == p.text for p in passages)
    assert passages[-1].end == len(text)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (random.Random(5).randbytes(20_000), "binary"),
        (b"text\x00more", "NUL"),
        (b"ok " * 100 + b"\x01\x02\x03\x04\x05" * 20, "control"),
        ("Caf\u00e9 owner fined \u20ac200 in Zürich".encode("cp1252"), None),
        ("Ünïcödé text, fine".encode(), None),
    ],
)
def test_binary_is_rejected_and_text_kept(data: bytes, needle: str | None) -> None:
    from dossier.errors import UnsupportedDocument

    if needle is None:
        assert decode(data, "x.txt")
        return
    with pytest.raises(UnsupportedDocument, match=needle):
        decode(data, "x.txt")


def test_discover_does_not_follow_symlinks_out_of_the_folder(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "a.txt").write_text("A\n\nText.", encoding="utf-8")
    (outside / "b.txt").write_text("B\n\nText.", encoding="utf-8")
    (root / "inside-link.txt").symlink_to(root / "a.txt")
    (root / "out-link.txt").symlink_to(outside / "b.txt")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    (root / "outdir").symlink_to(outside, target_is_directory=True)
    found = discover(root)
    assert [p.name for p in found.files] == ["a.txt", "inside-link.txt"]
    assert sorted(Path(p).name for p, _ in found.skipped) == ["out-link.txt", "outdir"]
