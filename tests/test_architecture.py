"""Layering and import circles, checked by import-linter (contracts in pyproject.toml) and grimp."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Set
from pathlib import Path
from typing import Protocol

import pytest

from tests.conftest import ROOT

PACKAGES = ("dossier", "ingest", "service", "ui", "evals", "training")


def test_import_contracts_hold() -> None:
    exe = Path(sys.executable).parent / "lint-imports"
    assert exe.exists(), "import-linter is part of the dev extra: `make install`"
    proc = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 kept, 0 broken" in proc.stdout


class ImportGraph(Protocol):
    """The part of grimp's ImportGraph the circle finder reads."""

    @property
    def modules(self) -> Set[str]: ...

    def find_modules_directly_imported_by(self, module: str) -> Set[str]: ...


def import_circles(graph: ImportGraph) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), lazy imports included."""
    modules = sorted(graph.modules)
    edges = {
        m: sorted(x for x in graph.find_modules_directly_imported_by(m) if x in graph.modules)
        for m in modules
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for m in modules:
        if m not in index:
            visit(m)
    return circles


def test_no_import_circles() -> None:
    grimp = pytest.importorskip("grimp")  # installed with import-linter
    sys.path.insert(0, str(ROOT))
    try:
        graph = grimp.build_graph(*PACKAGES)
    finally:
        sys.path.remove(str(ROOT))
    assert import_circles(graph) == []


def test_the_circle_finder_finds_a_circle() -> None:
    class Graph:
        modules = frozenset({"a", "b", "c"})

        def find_modules_directly_imported_by(self, module: str) -> set[str]:
            return {"a": {"b"}, "b": {"a"}, "c": {"a"}}[module]

    assert import_circles(Graph()) == [["a", "b"]]
