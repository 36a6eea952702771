"""Reports of a suite run: Markdown for people, JSON for tools, JUnit XML for CI dashboards."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path

from evals.runner import ANSWER_METRICS, QuestionResult, SuiteResult

WORST = 15


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _severity(q: QuestionResult) -> tuple[int, int, float]:
    # Confident wrongness first: unsupported citations and answers to unanswerable
    # questions mislead a reader; a refusal of an answerable question only disappoints.
    misleading = sum(
        1 for f in q.failures if f.startswith(("citation", "answered", "answer states"))
    )
    return (-misleading, -len(q.failures), q.metrics.get("key_fact_recall", 1.0))


def markdown(result: SuiteResult) -> str:
    lines = [
        f"# Dossier eval: {result.suite}",
        "",
        f"Answerer `{result.answerer}`, support scorer `{result.scorer}`, top_k {result.top_k}, "
        f"{len(result.questions)} questions, {result.seconds:.1f} s. "
        f"**{'PASSED' if result.passed else 'FAILED'}**",
        "",
        "| metric | value | 95% CI | n | threshold | goal | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result.metrics.values():
        bound = "" if r.bound is None else f"{'≥' if r.bound[0] == 'min' else '≤'} {r.bound[1]:.2f}"
        goal = "" if r.goal is None else f"{r.goal:.2f}"
        ci = "" if r.low is None or r.high is None else f"[{r.low:.3f}, {r.high:.3f}]"
        status = "" if r.bound is None else ("ok" if r.passed else "**MISSED**")
        lines.append(f"| {r.name} | {_fmt(r.value)} | {ci} | {r.n} | {bound} | {goal} | {status} |")
    if result.misses:
        lines += ["", "Thresholds missed:", *(f"- {miss}" for miss in result.misses)]
    kinds: dict[str, list[QuestionResult]] = {}
    for q in result.questions:
        kinds.setdefault(q.kind, []).append(q)
    by_kind = result.by_kind()
    lines += [
        "",
        "| question kind | n | passed | refused | first sentence (cited) | baseline | "
        "key fact anywhere (cited) | false refusal | sentences |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, qs in sorted(kinds.items()):
        row = by_kind[kind]
        shown = " | ".join(_fmt(row.get(name)) for name in ("refused", *ANSWER_METRICS))
        lines.append(f"| {kind} | {len(qs)} | {sum(q.passed for q in qs)} | {shown} |")
    failed = sorted((q for q in result.questions if not q.passed), key=_severity)
    lines += ["", f"## Worst failures ({min(WORST, len(failed))} of {len(failed)})"]
    for q in failed[:WORST]:
        lines += ["", f"### {q.qid} ({q.kind})", "", f"**Question:** {q.question}"]
        if q.history:
            lines.append(f"(asked in conversation as: {q.in_context!r} after {list(q.history)})")
        lines += ["", f"**Answer:** {q.answer}"]
        if q.refused:
            lines.append(f"(refused: {q.refusal_reason})")
        for c in q.citations:
            mark = "supported" if c.supported else "NOT supported"
            lines.append(
                f"- [{c.number}] {mark} (score {c.score:.2f}) by {c.title!r}: "
                f"“{' '.join(c.passage_excerpt[:160].split())}…”"
            )
        lines += ["", "Why it failed:", *(f"- {f}" for f in q.failures)]
    if result.ingest:
        lines += ["", "## Ingestion", *(f"- {s}" for s in result.ingest)]
    return "\n".join(lines) + "\n"


def as_json(result: SuiteResult) -> dict[str, object]:
    return {
        "suite": result.suite,
        "answerer": result.answerer,
        "scorer": result.scorer,
        "top_k": result.top_k,
        "passed": result.passed,
        "misses": result.misses,
        "seconds": round(result.seconds, 2),
        "metrics": {k: asdict(v) for k, v in result.metrics.items()},
        "by_kind": result.by_kind(),
        "questions": [asdict(q) | {"passed": q.passed} for q in result.questions],
        "ingest": result.ingest,
    }


def junit(result: SuiteResult) -> ET.Element:
    """Thresholds as one test suite (what gates), questions as another (what to look at)."""
    root = ET.Element("testsuites", name=f"dossier-eval-{result.suite}")
    gate = ET.SubElement(root, "testsuite", name=f"{result.suite}.thresholds")
    gated = [r for r in result.metrics.values() if r.bound is not None]
    gate.set("tests", str(len(gated)))
    gate.set("failures", str(sum(not r.passed for r in gated)))
    for r in gated:
        case = ET.SubElement(gate, "testcase", classname=f"{result.suite}.thresholds", name=r.name)
        if not r.passed and r.bound is not None:
            kind, limit = r.bound
            ET.SubElement(case, "failure", message=f"{r.name} = {_fmt(r.value)}, {kind} {limit}")
    qs = ET.SubElement(root, "testsuite", name=f"{result.suite}.questions")
    qs.set("tests", str(len(result.questions)))
    qs.set("failures", str(sum(not q.passed for q in result.questions)))
    qs.set("time", f"{result.seconds:.2f}")
    for q in result.questions:
        case = ET.SubElement(qs, "testcase", classname=f"{result.suite}.{q.kind}", name=q.qid)
        if not q.passed:
            failure = ET.SubElement(case, "failure", message=q.failures[0][:200])
            failure.text = f"Q: {q.question}\nA: {q.answer}\n" + "\n".join(q.failures)
    return root


def write_reports(result: SuiteResult, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out_dir / f"{result.suite}.md",
        "json": out_dir / f"{result.suite}.json",
        "junit": out_dir / f"{result.suite}.junit.xml",
    }
    paths["markdown"].write_text(markdown(result), encoding="utf-8")
    paths["json"].write_text(
        json.dumps(as_json(result), indent=2, ensure_ascii=False), encoding="utf-8"
    )
    tree = ET.ElementTree(junit(result))
    ET.indent(tree)
    tree.write(paths["junit"], encoding="utf-8", xml_declaration=True)
    return paths
