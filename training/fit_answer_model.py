"""Choose how the cross-encoder is used, on validation only, and report every split.

Called by ``python -m training.train_cross_encoder fit``. The rule, fixed before any
option was scored:

1. **Sentence choice.** Options: cosine top-1 (the trivial baseline), today's linear model,
   and the cross-encoder over the linear model's top ``n`` (``n`` in :data:`TOP_NS`) with
   the linear logit added at weight ``w`` (:data:`WEIGHTS`; 0 is the cross-encoder alone).
   The winner has the highest *first sentence states the key fact and cites the gold
   article* over the answerable news validation questions (bbc-gen3 validation, bbc-dev
   validation, seed, bbc-chat validation turns); ties (within 0.005) go to the smaller
   ``n``, then the smaller ``w``.
2. **Answerability.** A logistic model over today's P(answerable) and the cross-encoder's
   P(no answer) (:data:`dossier.answer.neural.ANSWERABILITY_FEATURES`), fit on the news
   validation questions; its threshold comes from out-of-fold predictions (5 folds by
   article): the highest one whose false-refusal rate is at most :data:`MAX_FALSE_REFUSAL`
   on **every** validation style (factoid, why/how, bbc-dev, conversation turns, seed).
   SQuAD's calibration: the threshold with the highest refusal recall at refusal precision
   at least :data:`SQUAD_PRECISION` on SQuAD validation.
3. **Composition.** A second sentence only when its probability is at least
   ``compose_ratio`` of the first's; the ratio (:data:`RATIOS`) with the highest key-fact
   recall (anywhere in the answer, gold cited) whose mean length stays within
   :data:`SENTENCE_BUDGET` sentences, on the same validation questions.

Then the table: every option on train (a sample), validation, test and transfer, per
dataset and style, beside today's linear model as the service runs it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dossier.answer.cross_encoder import CrossEncoder
from dossier.answer.model import compose, load_answer_model, softmax
from dossier.answer.neural import (
    ANSWERABILITY_FEATURES,
    DEFAULT_PATH,
    NeuralModel,
    answerability_row,
    combined,
    leans,
    top_candidates,
)
from dossier.settings import Settings
from evals.loaders import REPO, bbc_dev_rows
from evals.splits import article_of
from training.answer_candidates import CandidateSet, context_of, gen3_rows
from training.train_answerer import choose_threshold, fact_cited, fit_logistic

log = logging.getLogger("training.fit_answer_model")

NMAX = 12
# 12 was scored too (training/reports): +0.009 over 8 on validation, but 12 pairs cost ~47 ms
# a question on 2 cores, which the /v1/ask p95 budget of 100 ms cannot hold beside the rest.
TOP_NS = (4, 8)
WEIGHTS = (0.0, 0.25, 0.5, 1.0)
RATIOS = (0.25, 0.4, 0.55, 0.7, 0.85, math.inf)
MAX_FALSE_REFUSAL = 0.05
SQUAD_PRECISION = 0.85
SENTENCE_BUDGET = 1.3
TRAIN_SAMPLE = 400
NEWS_VALIDATION = ("bbc-gen3", "bbc-dev", "seed", "bbc-chat")
REPORT = REPO / "training" / "reports" / "train_cross_encoder.json"
ONNX_NAME = "cross_encoder.onnx"

Option = tuple[str, int, float]  # (kind, top n, linear weight)


def style_group(s: CandidateSet) -> str:
    """The validation style a threshold must hold on."""
    if s.dataset == "squad2":
        return "squad" if s.answerable else "squad/unanswerable"
    if s.dataset == "bbc-chat":
        return "chat"
    if s.dataset == "seed":
        return "seed"
    if s.dataset == "bbc-dev":
        return "bbc-dev"
    return s.style


def scored_pool(sets: Sequence[CandidateSet]) -> list[int]:
    """Indices of the questions the table and the choices read (not all of train)."""
    # A question with no candidate is refused before any model reads it.
    pool = [i for i, s in enumerate(sets) if s.split != "train" and s.texts]
    train = [
        i for i, s in enumerate(sets) if s.split == "train" and s.dataset == "bbc-gen3" and s.texts
    ]
    train.sort(key=lambda i: zlib.crc32(sets[i].qid.encode()))
    return sorted(pool + train[:TRAIN_SAMPLE])


def score_all(
    sets: Sequence[CandidateSet], pool: Iterable[int], encoder: CrossEncoder
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    started = time.perf_counter()
    for n, i in enumerate(pool, 1):
        s = sets[i]
        idx = top_candidates(s.linear_logits, NMAX)
        out[i] = (idx, encoder.logits(s.question, [context_of(s, int(j)) for j in idx]))
        if n % 500 == 0:
            log.info("scored %d questions (%.0f s)", n, time.perf_counter() - started)
    return out


def ranking(
    s: CandidateSet, ce: tuple[np.ndarray, np.ndarray] | None, option: Option
) -> tuple[np.ndarray, np.ndarray]:
    """(candidate indices best first, their probabilities among the ranked ones)."""
    kind, n, weight = option
    if kind == "cosine":
        scores = s.cos.astype(np.float64)
        idx = np.arange(len(scores))
    elif kind == "linear" or ce is None:
        scores = s.linear_logits.astype(np.float64)
        idx = np.arange(len(scores))
    else:
        idx, logits = ce[0][:n], ce[1][:n]
        scores = combined(logits, s.linear_logits[idx], weight)
    order = np.argsort(-scores, kind="stable")
    e = np.exp(scores[order] - scores[order].max())
    return idx[order], e / e.sum()


def groups_of(sets: Sequence[CandidateSet], settings: Settings) -> dict[str, str]:
    """qid -> article (or conversation) for out-of-fold folds."""
    out = {str(r["id"]): str(r.get("doc") or r["id"]) for r in gen3_rows(settings)}
    out.update({str(r["id"]): article_of(r) for r in bbc_dev_rows(settings)})
    for s in sets:
        if s.dataset in ("seed", "bbc-chat"):
            out.setdefault(s.qid, s.dataset if s.dataset == "seed" else s.qid.rsplit("-", 1)[0])
    return out


def oof_probabilities(
    X: np.ndarray, y: np.ndarray, groups: Sequence[str], folds: int = 5
) -> np.ndarray:
    fold = np.array([zlib.crc32(g.encode()) % folds for g in groups])
    out = np.zeros(len(y))
    for k in range(folds):
        fit = fold != k
        model = fit_logistic(X[fit], y[fit], 1e-3, ANSWERABILITY_FEATURES)
        z = model(X[~fit])
        out[~fit] = 1 / (1 + np.exp(-z))
    return out


def squad_threshold(p: np.ndarray, answerable: np.ndarray) -> float:
    best = (0.0, 0.0)  # (recall, threshold)
    for t in np.unique(p):
        refused = p < t
        if not refused.any():
            continue
        precision = float((~answerable[refused]).mean())
        recall = float(refused[~answerable].mean())
        if precision >= SQUAD_PRECISION and recall > best[0]:
            best = (recall, float(t))
    return best[1]


def mean(values: Iterable[float]) -> float | None:
    v = list(values)
    return round(float(np.mean(v)), 4) if v else None


def fit(
    sets: Sequence[CandidateSet], work: Path, out: Path = DEFAULT_PATH, report_path: Path = REPORT
) -> dict[str, Any]:
    settings = Settings()
    train_info = json.loads((work / "train.json").read_text(encoding="utf-8"))
    int8 = work / "cross_encoder.int8.onnx"
    digest = hashlib.sha256(int8.read_bytes()).hexdigest()
    encoder = CrossEncoder(int8, digest)
    null = float(train_info["null_logit"])
    pool = scored_pool(sets)
    ce = score_all(sets, pool, encoder)
    ev = [sets[i] for i in pool]
    ces = [ce[i] for i in pool]

    def news_val(s: CandidateSet) -> bool:
        return s.split == "validation" and s.dataset in NEWS_VALIDATION

    val = [k for k, s in enumerate(ev) if news_val(s)]
    val_ans = [k for k in val if ev[k].answerable]

    # 1. sentence choice
    options: list[Option] = [("cosine", 0, 0.0), ("linear", 0, 0.0)]
    options += [("ce", n, w) for n in TOP_NS for w in WEIGHTS]

    def selection_score(option: Option, ks: Sequence[int]) -> float:
        return float(
            np.mean([fact_cited(ev[k], [int(ranking(ev[k], ces[k], option)[0][0])]) for k in ks])
        )

    choice_table = {f"{o[0]}@{o[1]}w{o[2]}": selection_score(o, val_ans) for o in options}
    best_value = max(choice_table.values())
    ce_options = [o for o in options if o[0] == "ce"]
    ce_best = max(selection_score(o, val_ans) for o in ce_options)
    chosen = next(
        o
        for o in sorted(ce_options, key=lambda o: (o[1], o[2]))
        if selection_score(o, val_ans) >= ce_best - 0.005
    )
    log.info("selection on validation: %s; chosen %s", choice_table, chosen)
    top_n, weight = chosen[1], chosen[2]

    # 2. answerability
    def rows(ks: Sequence[int]) -> np.ndarray:
        return np.stack([answerability_row(ev[k].linear_p, ces[k][1][:top_n], null) for k in ks])

    Xv = rows(val)
    yv = np.array([ev[k].answerable for k in val], dtype=float)
    groups = groups_of(ev, settings)
    gv = [groups.get(ev[k].qid, ev[k].qid) for k in val]
    oof = oof_probabilities(Xv, yv, gv)
    styles = sorted({style_group(ev[k]) for k in val_ans})
    per_style = {}
    for st in styles:
        sel = np.array([style_group(ev[k]) == st and ev[k].answerable for k in val])
        per_style[st] = choose_threshold(oof[sel], np.ones(sel.sum(), bool), MAX_FALSE_REFUSAL)
    threshold = min(per_style.values())
    answerability = fit_logistic(Xv, yv, 1e-3, ANSWERABILITY_FEATURES)
    sq_val = [k for k, s in enumerate(ev) if s.dataset == "squad2" and s.split == "validation"]
    p_sq = 1 / (1 + np.exp(-answerability(rows(sq_val))))
    t_squad = squad_threshold(p_sq, np.array([ev[k].answerable for k in sq_val]))
    log.info("thresholds per style %s -> news %.3f; squad2 %.3f", per_style, threshold, t_squad)

    def p_answerable(k: int) -> float:
        return float(1 / (1 + np.exp(-answerability(rows([k]))[0])))

    p_all = {k: p_answerable(k) for k in range(len(ev))}

    def calibrated(k: int) -> float:
        return t_squad if ev[k].dataset == "squad2" else threshold

    # 3. composition
    def composed(k: int, ratio: float) -> list[int]:
        order, probs = ranking(ev[k], ces[k], chosen)
        # probs are sorted best first, so compose's positions index ``order``.
        return [int(order[i]) for i in compose(probs, ratio, 2)]

    ratio_table = {}
    for ratio in RATIOS:
        answered = [k for k in val_ans if p_all[k] >= threshold]
        recall = np.mean(
            [
                fact_cited(ev[k], composed(k, ratio)) if p_all[k] >= threshold else 0.0
                for k in val_ans
            ]
        )
        length = np.mean([len(composed(k, ratio)) for k in answered]) if answered else 0.0
        ratio_table[str(ratio)] = (float(recall), float(length))
    fits = [r for r in RATIOS if ratio_table[str(r)][1] <= SENTENCE_BUDGET]
    compose_ratio = max(fits, key=lambda r: (ratio_table[str(r)][0], r))
    log.info("composition on validation %s; chosen ratio %s", ratio_table, compose_ratio)

    # the table
    linear_model = load_answer_model()

    def linear_system(k: int) -> tuple[bool, list[int]]:
        s = ev[k]
        name = {"squad2": "squad2", "bbc-chat": "chat"}.get(s.dataset)
        t = linear_model.calibrations.get(name, linear_model.threshold) if name else None
        refused = s.linear_p < (linear_model.threshold if t is None else t)
        return refused, linear_model.compose(softmax(s.linear_logits))

    def neural_system(k: int) -> tuple[bool, list[int]]:
        return p_all[k] < calibrated(k), composed(k, compose_ratio)

    systems: dict[str, Callable[[int], tuple[bool, list[int]]]] = {
        "linear (today)": linear_system,
        "neural": neural_system,
    }
    table_options: dict[str, Option] = {
        "cosine": ("cosine", 0, 0.0),
        "linear": ("linear", 0, 0.0),
        **{f"ce@{n}": ("ce", n, 0.0) for n in TOP_NS},
        f"chosen ce@{top_n}+{weight}*linear": chosen,
    }
    cells: dict[str, list[int]] = {}
    for k, s in enumerate(ev):
        for key in (f"{s.dataset}/{s.split}", f"{s.dataset}/{s.split}/{style_group(s)}"):
            cells.setdefault(key, []).append(k)
    table: dict[str, Any] = {}
    for key, ks in sorted(cells.items()):
        ans = [k for k in ks if ev[k].answerable]
        una = [k for k in ks if not ev[k].answerable]
        row: dict[str, Any] = {"answerable": len(ans), "unanswerable": len(una)}
        for name, option in table_options.items():
            row[f"{name} first_sentence"] = mean(
                fact_cited(ev[k], [int(ranking(ev[k], ces[k], option)[0][0])]) for k in ans
            )
            row[f"{name} gold_top1"] = mean(
                float(ev[k].positive[int(ranking(ev[k], ces[k], option)[0][0])]) for k in ans
            )
        for name, system in systems.items():
            res = {k: system(k) for k in ks}
            row[f"{name}: first_sentence_key_fact_cited"] = mean(
                0.0 if res[k][0] or not res[k][1] else fact_cited(ev[k], res[k][1][:1]) for k in ans
            )
            row[f"{name}: key_fact_recall_cited"] = mean(
                0.0 if res[k][0] else fact_cited(ev[k], res[k][1]) for k in ans
            )
            row[f"{name}: false_refusal"] = mean(float(res[k][0]) for k in ans)
            row[f"{name}: refused_unanswerable"] = mean(float(res[k][0]) for k in una)
            row[f"{name}: sentences_per_answer"] = mean(len(res[k][1]) for k in ks if not res[k][0])
        table[key] = row
    leaning = mean(
        float(leans(ev[k].texts[int(ranking(ev[k], ces[k], chosen)[0][0])])) for k in val_ans
    )
    parity = torch_parity(ev, ces, work, top_n)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(int8, out.parent / ONNX_NAME)
    model = NeuralModel(
        onnx=ONNX_NAME,
        onnx_sha256=digest,
        null_logit=null,
        top_n=top_n,
        linear_weight=weight,
        answerability=answerability,
        threshold=threshold,
        compose_ratio=compose_ratio,
        max_sentences=2,
        calibrations={"news": threshold, "chat": threshold, "squad2": t_squad},
        meta={
            "trained": train_info,
            "rule": "see training/fit_answer_model.py",
            "selection_validation": choice_table,
            "thresholds_per_style": per_style,
            "composition_validation": ratio_table,
            "first_sentence_leans_validation": leaning,
            "parity_probes": parity.pop("probes", []),
        },
    )
    sha = model.save(out)
    report = {
        "chosen": {
            "top_n": top_n,
            "linear_weight": weight,
            "threshold": threshold,
            "squad2_threshold": t_squad,
            "compose_ratio": compose_ratio,
        },
        "selection_validation": choice_table,
        "best_selection_validation": best_value,
        "thresholds_per_style": per_style,
        "composition_validation": ratio_table,
        "parity": parity,
        "onnx_bytes": (out.parent / ONNX_NAME).stat().st_size,
        "table": table,
    }
    report_path.write_text(json.dumps(report, indent=1, default=float) + "\n", encoding="utf-8")
    print_table(table)
    log.info("wrote %s (sha256 %s), %s and %s", out, sha[:12], out.parent / ONNX_NAME, report_path)
    return report


def torch_parity(
    ev: Sequence[CandidateSet], ces: Sequence[tuple[np.ndarray, np.ndarray]], work: Path, n: int
) -> dict[str, Any]:
    """The int8 ONNX logits against the trained torch weights on 40 validation questions,
    and three probes (question, contexts, torch logits) for the run-time test."""
    try:
        import torch

        from training.minilm import CrossEncoder as TorchCrossEncoder
        from training.minilm import torch_logits
    except ImportError:
        return {"skipped": "torch is not installed (the train extra)"}
    from dossier.answer.cross_encoder import pair_tokenizer

    model = TorchCrossEncoder()
    model.load_state_dict(torch.load(sorted(work.glob("epoch*.pt"))[-1]))
    model.eval()
    tokenizer = pair_tokenizer()
    ks = [k for k, s in enumerate(ev) if s.split == "validation" and s.dataset == "bbc-gen3"][:40]
    diffs, agree = [], []
    probes: list[dict[str, Any]] = []
    for k in ks:
        s = ev[k]
        idx = ces[k][0][:n]
        contexts = [context_of(s, int(j)) for j in idx]
        t = torch_logits(model, tokenizer, s.question, contexts)
        o = ces[k][1][:n]
        diffs.append(float(np.abs(t - o).max()))
        agree.append(float(np.argmax(t) == np.argmax(o)))
        if len(probes) < 3:
            probes.append({"question": s.question, "contexts": contexts, "torch": t.tolist()})
    return {
        "questions": len(ks),
        "max_abs_logit_diff": max(diffs),
        "mean_max_abs_logit_diff": float(np.mean(diffs)),
        "top1_agreement": float(np.mean(agree)),
        "probes": probes,
    }


def print_table(table: dict[str, Any]) -> None:
    keys = [
        "linear (today): first_sentence_key_fact_cited",
        "neural: first_sentence_key_fact_cited",
        "cosine first_sentence",
        "linear (today): false_refusal",
        "neural: false_refusal",
        "linear (today): refused_unanswerable",
        "neural: refused_unanswerable",
        "linear (today): sentences_per_answer",
        "neural: sentences_per_answer",
    ]
    short = [
        "lin fs",
        "neu fs",
        "cos fs",
        "lin FR",
        "neu FR",
        "lin RR",
        "neu RR",
        "lin len",
        "neu len",
    ]
    print(f"{'cell':42s} {'n':>4s} " + " ".join(f"{h:>7s}" for h in short))
    for cell, row in table.items():
        vals = [row.get(k) for k in keys]
        shown = " ".join(f"{v:7.3f}" if isinstance(v, float) else f"{'-':>7s}" for v in vals)
        print(f"{cell:42s} {row['answerable'] + row['unanswerable']:4d} {shown}")
