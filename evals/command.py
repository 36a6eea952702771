"""What ``dossier eval`` does; ``service.cli`` only parses options and calls :func:`run`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dossier.engine import Dossier
from dossier.settings import Settings
from evals.degraded import eval_answerer
from evals.loaders import load_suite
from evals.reports import write_reports
from evals.runner import THRESHOLDS, load_goals, load_thresholds, run_suite


def run(
    settings: Settings,
    suite: str,
    *,
    answerer: str | None = None,
    limit: int | None = None,
    out: Path = Path("evals/reports"),
    docs: Path | None = None,
    collection: str | None = None,
    thresholds: Path | None = None,
    echo: Callable[[str], None] = lambda _: None,
) -> int:
    """Run a suite, write its reports, and return the exit code: 0 passed, 1 a threshold missed."""
    if suite == "conflicts":  # not questions and answers: the detector's own set
        from evals.conflicts import main

        args = ["--gate", "--seed-answers", "--out", str(out / "conflicts.json")]
        return main([*args, *(["--limit", str(limit)] if limit else [])])
    engine = Dossier(settings)
    loaded = load_suite(suite, settings, docs=docs, collection=collection)
    path = thresholds or THRESHOLDS
    result = run_suite(
        engine,
        loaded,
        answerer=eval_answerer(settings, answerer),
        limit=limit,
        thresholds=load_thresholds(loaded.name, path),
        goals=load_goals(loaded.name, path),
    )
    for r in result.metrics.values():
        ci = "" if r.low is None or r.high is None else f"  [{r.low:.3f}, {r.high:.3f}]"
        value = "n/a" if r.value is None else f"{r.value:.3f}"
        echo(f"{r.name:20s} {value}{ci}  n={r.n}")
    for kind, row in result.by_kind().items():
        shown = "  ".join(f"{k}={v:.3f}" for k, v in row.items() if k != "n")
        echo(f"  {kind} (n={row['n']:.0f}): {shown}")
    paths = write_reports(result, out)
    echo(f"reports: {', '.join(str(p) for p in paths.values())}")
    if result.misses:
        echo(f"FAILED: {len(result.misses)} threshold(s) missed for suite {result.suite}:")
        for miss in result.misses:
            echo(f"  {miss}")
        return 1
    echo(f"passed: {len(result.questions)} questions in {result.seconds:.1f} s")
    return 0
