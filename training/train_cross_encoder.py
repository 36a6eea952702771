"""Train the neural answer model (a MiniLM cross-encoder), export it, fit how it is used.

    python -m training.answer_candidates               # once: retrieve every question
    python -m training.train_cross_encoder train       # fine-tune, export ONNX fp32 + int8
    python -m training.train_cross_encoder fit         # choose on validation, report, write

Reproducible: fixed seeds (torch, numpy), fixed data order, one thread count; CI never
trains. ``train`` needs the ``train`` extra (torch, safetensors, onnx); ``fit`` scores
with the int8 ONNX file on onnxruntime, as the service does, and checks it against torch.

**Training** (``train`` rows only: ``bbc-train``, ``bbc-gen3`` train, SQuAD half A train):
each question's candidates are the sentences Dossier's own retrieval returns. Per question
and epoch: the gold sentence(s) (at most two), and hard negatives sampled from the ten
best non-gold sentences by today's linear model and the four most similar by cosine, up to
:data:`GROUP` in all. Loss: listwise softmax over ``[NULL, candidates]``, the target NULL
for an unanswerable question (SQuAD 2.0-style), the gold sentence(s) otherwise. AdamW,
encoder 3e-5 and head 1e-3, 10% warm-up then linear decay, 4 questions a step, 2 epochs.

**Fitting** (``validation`` rows choose, ``test`` and ``transfer`` are only reported):
see :func:`fit` for the options compared and the rule, fixed before any was scored.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from dossier.answer.cross_encoder import pair_tokenizer
from training.answer_candidates import DEFAULT_CACHE, CandidateSet, context_of, load_sets

log = logging.getLogger("training.train_cross_encoder")

SEED = 20261203
GROUP = 8  # candidates a question contributes to one training step
GOLD_MAX = 2
QUESTIONS_PER_STEP = 4
EPOCHS = 2
ENCODER_LR = 3e-5
HEAD_LR = 1e-3
WARMUP = 0.1
WORK = Path(".dossier") / "cross-encoder"
TRAIN_DATASETS = ("bbc-train", "bbc-gen3", "squad2")


def training_sets(sets: Sequence[CandidateSet]) -> list[CandidateSet]:
    """Train rows a target exists for: unanswerable, or answerable with the gold retrieved."""
    out = [
        s
        for s in sets
        if s.split == "train"
        and s.dataset in TRAIN_DATASETS
        and s.texts
        and (not s.answerable or bool(s.positive.any()))
    ]
    return out


def sample_group(s: CandidateSet, rng: random.Random) -> tuple[list[int], list[int]]:
    """(candidate indices, positions in the group of the gold ones; empty: target NULL)."""
    gold = [int(i) for i in np.flatnonzero(s.positive)] if s.answerable else []
    rng.shuffle(gold)
    gold = gold[:GOLD_MAX]
    banned = set(int(i) for i in np.flatnonzero(s.positive))
    by_linear = [int(i) for i in np.argsort(-s.linear_logits, kind="stable") if i not in banned]
    by_cos = [int(i) for i in np.argsort(-s.cos, kind="stable") if i not in banned]
    pool = list(dict.fromkeys(by_linear[:10] + by_cos[:4]))
    negatives = rng.sample(pool, min(len(pool), GROUP - len(gold)))
    chosen = gold + negatives
    rng.shuffle(chosen)
    return chosen, [chosen.index(g) for g in gold]


def train(sets: Sequence[CandidateSet], epochs: int, out: Path, limit: int = 0) -> None:
    import torch

    from training.minilm import export_onnx, load_pretrained

    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    rng = random.Random(SEED)
    rows = training_sets(sets)
    if limit:
        rows = rows[:limit]
    log.info(
        "training on %d questions (%d unanswerable)",
        len(rows),
        sum(not s.answerable for s in rows),
    )
    tokenizer = pair_tokenizer()
    model = load_pretrained()
    head = [model.head.weight, model.head.bias, model.null]
    head_ids = {id(p) for p in head}
    encoder = [p for p in model.parameters() if id(p) not in head_ids]
    optimizer = torch.optim.AdamW(
        [{"params": encoder, "lr": ENCODER_LR}, {"params": head, "lr": HEAD_LR}],
        weight_decay=0.01,
    )
    steps = epochs * ((len(rows) + QUESTIONS_PER_STEP - 1) // QUESTIONS_PER_STEP)
    warm = max(1, int(WARMUP * steps))

    def schedule(step: int) -> float:
        return (step + 1) / warm if step < warm else max(0.0, (steps - step) / (steps - warm))

    lr_sched = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    step = 0
    for epoch in range(epochs):
        order = list(range(len(rows)))
        rng.shuffle(order)
        model.train()
        running = 0.0
        for b in range(0, len(order), QUESTIONS_PER_STEP):
            batch = [rows[i] for i in order[b : b + QUESTIONS_PER_STEP]]
            groups = [sample_group(s, rng) for s in batch]
            questions: list[str] = []
            contexts: list[str] = []
            for s, (idx, _) in zip(batch, groups, strict=True):
                questions += [s.question] * len(idx)
                contexts += [context_of(s, i) for i in idx]
            enc = tokenizer.encode_batch(list(zip(questions, contexts, strict=True)))
            ids = torch.tensor([e.ids for e in enc])
            mask = torch.tensor([e.attention_mask for e in enc])
            types = torch.tensor([e.type_ids for e in enc])
            logits = model(ids, mask, types)
            loss = torch.zeros(())
            at = 0
            for idx, gold in groups:
                row = torch.cat([model.null.view(1), logits[at : at + len(idx)]])
                at += len(idx)
                target = [0] if not gold else [1 + g for g in gold]
                loss = loss + torch.logsumexp(row, 0) - torch.logsumexp(row[target], 0)
            loss = loss / len(groups)
            optimizer.zero_grad()
            # Any: torch's backward is untyped, and mypy runs where torch is absent too.
            cast(Any, loss).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            lr_sched.step()
            step += 1
            running += float(loss)
            if step % 50 == 0:
                log.info(
                    "epoch %d step %d/%d loss %.3f (%.0f s)",
                    epoch + 1,
                    step,
                    steps,
                    running / 50,
                    time.perf_counter() - started,
                )
                running = 0.0
        torch.save(model.state_dict(), out / f"epoch{epoch + 1}.pt")
        log.info("epoch %d done in %.0f s", epoch + 1, time.perf_counter() - started)
    minutes = (time.perf_counter() - started) / 60
    fp32 = out / "cross_encoder.fp32.onnx"
    export_onnx(model, fp32)
    int8 = out / "cross_encoder.int8.onnx"
    quantize(fp32, int8)
    (out / "train.json").write_text(
        json.dumps(
            {
                "questions": len(rows),
                "epochs": epochs,
                "minutes": round(minutes, 1),
                "null_logit": float(model.null.detach()),
                "seed": SEED,
                "threads": torch.get_num_threads(),
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    log.info("trained in %.1f min; wrote %s and %s", minutes, fp32, int8)


def quantize(fp32: Path, int8: Path) -> None:
    """Dynamic int8: weights of the matrix products and the embedding tables (Gather), so
    the file stays under 30 MB; activations are quantised per call. Per channel: per
    tensor drifted from torch by 2.0 logits on average (max 3.5), per channel by 0.9 (max
    2.0), at the same gold-sentence accuracy on 40 validation questions."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32),
        str(int8),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gather"],
        per_channel=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=["train", "quantize", "fit"])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--limit", type=int, default=0, help="first N questions (smoke runs)")
    parser.add_argument("--every", type=int, default=1, help="fit: every Nth question (smoke)")
    parser.add_argument("--out", type=Path, default=None, help="fit: the artefact to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sets = load_sets(args.cache)
    if args.stage == "train":
        train(sets, args.epochs, args.work, args.limit)
    elif args.stage == "quantize":  # again, from the exported fp32 file
        quantize(args.work / "cross_encoder.fp32.onnx", args.work / "cross_encoder.int8.onnx")
    else:
        from dossier.answer.neural import DEFAULT_PATH
        from training.fit_answer_model import REPORT, fit

        out = args.out or DEFAULT_PATH
        report = REPORT if args.out is None else out.with_suffix(".report.json")
        fit(sets[:: args.every], args.work, out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
