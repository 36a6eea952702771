"""Read the reports that ``dossier eval`` writes: ``<reports_dir>/<suite>.json``.

The format is ``evals.reports.as_json`` (the UI may not import ``evals``; a test writes
real reports with ``write_reports`` and reads them back here): the run's settings, whether
it ``passed`` and which thresholds it ``misses``, one entry per metric under ``metrics``
(``value``, 95% CI ``low``/``high``, ``n``, the gating ``bound`` as ``[kind, limit]``, a
non-gating ``goal``) and one per question under ``questions``. A metric named
``baseline_X`` is the trivial baseline answerer's X on the same questions, shown beside X.
Other JSON files in the folder (the training scripts' summaries) are not suite reports and
are skipped.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BASELINE = "baseline_"


@dataclass(frozen=True)
class Metric:
    name: str
    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0
    bound: tuple[str, float] | None = None  # ("min" | "max", limit): gates the run
    goal: float | None = None
    baseline: float | None = None  # the baseline answerer's value of the same metric

    @property
    def passed(self) -> bool | None:
        """None when ungated; a gated metric that could not be measured is a miss."""
        if self.bound is None:
            return None
        if self.value is None:
            return False
        kind, limit = self.bound
        return self.value >= limit if kind == "min" else self.value <= limit

    @property
    def threshold(self) -> str:
        if self.bound is None:
            return ""
        kind, limit = self.bound
        return f"{'≥' if kind == 'min' else '≤'} {limit:g}"

    @property
    def status(self) -> str:
        return {None: "", True: "ok", False: "MISSED"}[self.passed]


@dataclass(frozen=True)
class SuiteReport:
    suite: str
    path: Path
    created: str  # the file's modification time: the report carries no timestamp
    metrics: list[Metric] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)
    passed: bool | None = None
    misses: list[str] = field(default_factory=list)
    answerer: str = ""
    scorer: str = ""
    top_k: int | None = None
    seconds: float | None = None
    ingest: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def status(self) -> str:
        if self.error:
            return "unreadable"
        return {None: "", True: "PASSED", False: "FAILED"}[self.passed]

    def summary(self) -> dict[str, Any]:
        """One row of the overview table."""
        return {
            "suite": self.suite,
            "status": self.status,
            "answerer": self.answerer,
            "scorer": self.scorer,
            "top_k": self.top_k,
            "questions": len(self.questions),
            "questions passed": sum(1 for q in self.questions if q.get("passed")),
            "thresholds missed": len(self.misses),
            "seconds": self.seconds,
            "written": self.created,
        }


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _bound(raw: Any) -> tuple[str, float] | None:
    if isinstance(raw, list | tuple) and len(raw) == 2 and raw[0] in ("min", "max"):
        limit = _number(raw[1])
        if limit is not None:
            return str(raw[0]), limit
    return None


def _metrics(raw: dict[str, Any]) -> list[Metric]:
    """The report's metrics in its order, each ``baseline_X`` folded into X's row (or kept
    as its own row when the report has no X)."""
    entries = {name: m for name, m in raw.items() if isinstance(m, dict)}
    out = []
    for name, m in entries.items():
        if name.startswith(BASELINE) and name[len(BASELINE) :] in entries:
            continue
        base = entries.get(BASELINE + name)
        n = m.get("n")
        out.append(
            Metric(
                name=str(m.get("name") or name),
                value=_number(m.get("value")),
                low=_number(m.get("low")),
                high=_number(m.get("high")),
                n=n if isinstance(n, int) else 0,
                bound=_bound(m.get("bound")),
                goal=_number(m.get("goal")),
                baseline=_number(base.get("value")) if base else None,
            )
        )
    return out


def _question_row(q: dict[str, Any]) -> dict[str, Any]:
    """A question as one table row: its verdict first, nested values as short text."""
    citations = q.get("citations") or []
    supported = sum(1 for c in citations if isinstance(c, dict) and c.get("supported"))
    failures = q.get("failures") or []
    return {
        "passed": bool(q.get("passed", not failures)),
        "qid": q.get("qid"),
        "kind": q.get("kind"),
        "question": q.get("question"),
        "asked in conversation as": q.get("in_context"),
        "answer": q.get("answer"),
        "refused": q.get("refused"),
        "citations supported": f"{supported}/{len(citations)}" if citations else "",
        "why it failed": "; ".join(str(f) for f in failures),
        **{
            k: v
            for k, v in (q.get("metrics") or {}).items()
            if _number(v) is not None and not k.startswith(BASELINE)
        },
    }


def is_suite_report(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("suite"), str)
        and isinstance(data.get("metrics"), dict)
        and isinstance(data.get("questions"), list)
    )


def parse_report(path: Path) -> SuiteReport | None:
    """The report in ``path``; None when the file is JSON but not a suite report."""
    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("unreadable eval report %s: %s", path, exc)
        return SuiteReport(path.stem, path, mtime, error=f"Unreadable report {path.name}: {exc}")
    if not is_suite_report(data):
        log.debug("%s is not a suite report; skipped", path)
        return None
    passed = data.get("passed")
    top_k = data.get("top_k")
    return SuiteReport(
        suite=data["suite"],
        path=path,
        created=mtime,
        metrics=_metrics(data["metrics"]),
        questions=[_question_row(q) for q in data["questions"] if isinstance(q, dict)],
        passed=passed if isinstance(passed, bool) else None,
        misses=[str(m) for m in data.get("misses") or []],
        answerer=str(data.get("answerer") or ""),
        scorer=str(data.get("scorer") or ""),
        top_k=top_k if isinstance(top_k, int) else None,
        seconds=_number(data.get("seconds")),
        ingest=[str(s) for s in data.get("ingest") or []],
    )


def latest_reports(reports_dir: Path) -> list[SuiteReport]:
    """Every suite report in the folder (each run overwrites its suite's file), by suite."""
    if not reports_dir.is_dir():
        return []
    reports = [parse_report(p) for p in sorted(reports_dir.glob("*.json")) if p.is_file()]
    return sorted((r for r in reports if r is not None), key=lambda r: r.suite)
