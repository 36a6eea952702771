"""Read the evals runner's reports: ``<reports_dir>/<suite>/report.json``, latest per suite.

The runner is still evolving, so this reads leniently: headline metrics are the numbers
under ``"metrics"`` (or, failing that, the numeric top-level fields), and per-case rows
are the list under ``"cases"`` or ``"results"`` when there is one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPORT_NAME = "report.json"
_ROW_KEYS = ("cases", "results", "items", "questions")


@dataclass(frozen=True)
class SuiteReport:
    suite: str
    path: Path
    created: str
    metrics: dict[str, float]
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def _numbers(data: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in data.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _flat_row(row: Any) -> dict[str, Any]:
    """Nested values become JSON text so that a table can show them."""
    if not isinstance(row, dict):
        return {"value": json.dumps(row)}
    return {
        k: v if isinstance(v, str | int | float | bool) or v is None else json.dumps(v)
        for k, v in row.items()
    }


def parse_report(suite: str, path: Path) -> SuiteReport:
    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("the top level is not a JSON object")
    except (OSError, ValueError) as exc:
        log.warning("unreadable eval report %s: %s", path, exc)
        return SuiteReport(suite, path, mtime, {}, error=f"Unreadable report: {exc}")
    metrics_src = data.get("metrics")
    metrics = _numbers(metrics_src) if isinstance(metrics_src, dict) else _numbers(data)
    rows: list[dict[str, Any]] = []
    for key in _ROW_KEYS:
        if isinstance(data.get(key), list):
            rows = [_flat_row(r) for r in data[key]]
            break
    created = str(data.get("created") or data.get("timestamp") or data.get("finished") or mtime)
    return SuiteReport(str(data.get("suite") or suite), path, created, metrics, rows)


def latest_reports(reports_dir: Path) -> list[SuiteReport]:
    """One report per suite folder, sorted by suite name; [] when there are none."""
    if not reports_dir.is_dir():
        return []
    reports = []
    for suite_dir in sorted(p for p in reports_dir.iterdir() if p.is_dir()):
        path = suite_dir / REPORT_NAME
        if path.is_file():
            reports.append(parse_report(suite_dir.name, path))
    return reports
