"""Issue #4's goals for the LLM answerer, measured on the seed suite against a live endpoint.

    DOSSIER_LLM_BASE_URL=http://127.0.0.1:8080/v1 DOSSIER_LLM_MODEL=smollm2 \\
        .venv/bin/python benchmarks/llm_goals.py [--limit N] [--out llm_goals.json]

The suite runs once per verification policy (annotate, strip, strict) with the offline
support scorer judging. Generations are cached across the three runs: at temperature 0
the endpoint would write the same text, and on two CPU cores each answer takes seconds.
Then the time to the first server-sent event (the passages) is measured over HTTP.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dossier.answer.llm import LLMAnswerer, LLMFailure
from dossier.engine import Dossier, _extractive
from dossier.settings import Settings
from dossier.testing import LiveServer
from dossier.verify.offline import OfflineSupportScorer
from evals.loaders import load_suite
from evals.runner import run_suite
from service.app import create_app

_CACHE: dict[str, tuple[str | None, str | None, int]] = {}  # prompt -> (text, failure, n)


class CachedLLM(LLMAnswerer):
    def _generate(self, messages: list[dict[str, str]]) -> Generator[str, None, None]:
        key = json.dumps(messages)
        n_passages = messages[-1]["content"].count('<passage n="')
        if key not in _CACHE:
            pieces: list[str] = []
            try:
                pieces.extend(super()._generate(messages))
                _CACHE[key] = ("".join(pieces), None, n_passages)
            except LLMFailure as exc:
                _CACHE[key] = (None, str(exc), n_passages)
        text, failure, _ = _CACHE[key]
        if failure is not None:
            raise LLMFailure(failure)
        yield text or ""


def _mean(results: Any, name: str) -> float | None:
    values = [q.metrics[name] for q in results if name in q.metrics]
    return round(statistics.fmean(values), 4) if values else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("llm_goals.json"))
    args = ap.parse_args()
    settings = Settings(answerer="llm")
    engine = Dossier(settings)
    suite = load_suite("seed", settings)
    scorer = OfflineSupportScorer(engine.embedder, threshold=settings.support_threshold)
    report: dict[str, Any] = {"model": settings.llm_model, "questions": 0, "policies": {}}
    for policy in ("annotate", "strip", "strict"):
        answerer = CachedLLM(
            settings.model_copy(update={"llm_verification": policy}),
            fallback=_extractive(settings),
            scorer=scorer,
        )
        started = time.perf_counter()
        result = run_suite(
            engine, suite, answerer=answerer, scorer=scorer, limit=args.limit, thresholds={}
        )
        answerer.close()
        qs = result.questions
        llm_written = [q for q in qs if q.metrics.get("degraded") == 0.0 and not q.refused]
        report["questions"] = len(qs)
        report["policies"][policy] = {
            "seconds": round(time.perf_counter() - started, 1),
            "delivered_answers": sum(not q.refused for q in qs),
            "refused": sum(q.refused for q in qs),
            "degraded": sum(q.metrics.get("degraded", 0.0) for q in qs),
            "llm_written_answers": len(llm_written),
            "dangling_citations_delivered": sum(q.metrics.get("dangling_citations", 0) for q in qs),
            "faithfulness_delivered": _mean(qs, "faithfulness"),
            "faithfulness_llm_written": _mean(llm_written, "faithfulness"),
            "citation_precision": _mean(qs, "citation_precision"),
            "unsupported_sentences_share": _mean(llm_written, "unsupported_sentences"),
        }
        print(policy, json.dumps(report["policies"][policy]), flush=True)
    raw_dangling = 0
    for text, _, n in _CACHE.values():
        nums = [int(x) for m in re.findall(r"\[([\d,\s]+)\]", text or "") for x in m.split(",")]
        raw_dangling += sum(1 for x in nums if not 1 <= x <= n)
    reasons: dict[str, int] = {}
    for text, failure, _ in _CACHE.values():
        key = failure or ("generated" if text else "empty")
        reasons[key] = reasons.get(key, 0) + 1
    report["generations"] = {"total": len(_CACHE), "outcomes": reasons}
    report["dangling_markers_written_by_model"] = raw_dangling

    # Time to the first event (the passages) of a streamed answer, on the default retrieval.
    firsts: list[float] = []
    with LiveServer(create_app(settings, engine)) as server:
        for q in [q.question for q in suite.questions[:20]]:
            t0 = time.perf_counter()
            with httpx.stream(
                "POST", f"{server.url}/v1/ask", json={"question": q, "stream": True}, timeout=120
            ) as r:
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        firsts.append(time.perf_counter() - t0)
                        break
    report["stream_first_event_ms"] = {
        "p50": round(statistics.median(firsts) * 1000, 1),
        "max": round(max(firsts) * 1000, 1),
        "n": len(firsts),
    }
    if isinstance(engine.answerer, LLMAnswerer):
        engine.answerer.close()
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
