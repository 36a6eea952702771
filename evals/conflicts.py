"""Conflict detection (dossier/verify/conflicts.py): a synthetic set, the fit, the report.

``python -m evals.conflicts [--save] [--out evals/reports/conflicts.json] [--seed-answers]``

The set is generated at run time from the BBC articles of
``shared/benchmarks/bbc-qa-dev/train-articles.txt`` only (research use; nothing is
copied into the repository). For each article, by these rules:

* **Sentence.** Of the body sentences (8+ words) that state a value (a figure, an amount,
  a percentage, a duration or a date; :func:`dossier.verify.conflicts.values`), one is
  picked by a generator seeded with the article's name. It is the answer sentence, cited
  from the original article (publisher "BBC", no date).
* **Positive.** A copy of the whole article under another publisher ("Wire Service") and
  date, in which one value of that sentence is changed: an integer moves by 10-50% (at
  least 1), a year by 1-3, a decimal in its last digit, a month to another month. Half
  the copies (by the seeded generator) are also reworded: up to two words of the sentence
  that are neither values nor names are dropped. The detector must flag the copy's
  sentence and give the changed value.
* **Negative.** A partial copy under a third publisher: the sentence's paragraph and its
  neighbours, the sentence unchanged (reworded by the same rule as positives, so word
  drops say nothing). Nothing may be flagged.
* **Distractors.** In both, the three paragraphs of other articles of the same split and
  folder that share most content terms with the sentence are retrieved too: any flag on
  them is a false flag.

Articles are split by a salted hash of their name (60% train, 20% validation, 20%
test) before anything was fit. The overlap cutoff and the names cutoff are fitted per
overlap measure on train (most recall with at most 2% of cases falsely flagged), the
measure is chosen on validation the same way, and test is only reported. The trivial
baseline (flag whenever a passage of another document holds a value the sentence lacks)
is printed beside it. ``--seed-answers`` also counts flags on the seed suite's answers
over ``corpus/albania-iran`` (one article: every flag there is false).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from dossier.models import Passage
from dossier.settings import Settings
from dossier.text import sentence_spans, term_set
from dossier.verify.conflicts import (
    _MONTH_NAMES,
    _ORDINAL_NAMES,
    _WEEKDAY_NAMES,
    MEASURES,
    RULE_PATH,
    ConflictRule,
    _content,
    compare,
    disagreements,
    overlap,
    values,
)
from dossier.verify.features import names
from evals.loaders import BBC_DIR, shared_dir
from evals.runner import THRESHOLDS, MetricResult, load_thresholds

SALT = "dossier-conflicts-2026-12"
TRAIN_LIST = Path("benchmarks") / "bbc-qa-dev" / "train-articles.txt"
MAX_FALSE_FLAGS = 0.02
OVERLAP_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))
NAMES_GRID = (0.0, 0.5, 0.75, 1.0)
_MONTHS = tuple(_MONTH_NAMES.split("|"))
_WEEKDAYS = tuple(_WEEKDAY_NAMES.split("|"))
_ORDINALS = tuple(_ORDINAL_NAMES.split("|"))


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def split_of(article: str) -> str:
    h = int(hashlib.sha256(f"{SALT}\x00{article}".encode()).hexdigest()[:8], 16) % 10
    return "train" if h < 6 else "validation" if h < 8 else "test"


def read_article(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # sport/199.txt is cp1252 (the README says so)
        return raw.decode("cp1252")


def paragraphs(text: str) -> list[tuple[int, int]]:
    out, pos = [], 0
    for block in re.split(r"(\n\s*\n)", text):
        if block.strip() and not re.fullmatch(r"\n\s*\n", block):
            lead = len(block) - len(block.lstrip())
            out.append((pos + lead, pos + len(block.rstrip())))
        pos += len(block)
    return out


def passages_of(
    doc_id: str, title: str, text: str, publisher: str, published: str | None
) -> list[Passage]:
    return [
        Passage(f"{doc_id}:{i}", doc_id, text[s:e], s, e, title, publisher, None, published)
        for i, (s, e) in enumerate(paragraphs(text))
    ]


def changed(value: str, rng: random.Random) -> str | None:
    """The value with its figure (or month, weekday, rank) changed, in the same format."""
    for kind in (_MONTHS, _WEEKDAYS, _ORDINALS):
        for name in kind:
            if re.search(rf"\b{name}\b", value):
                other = rng.choice([n for n in kind if n != name])
                return re.sub(rf"\b{name}\b", other, value, count=1)
    m = re.search(r"\d[\d,]*(?:\.\d+)?", value)
    if m is None:
        return None
    raw = m.group()
    digits = raw.replace(",", "")
    if "." in digits:
        whole, frac = digits.split(".")
        last = (int(frac[-1]) + rng.randint(1, 8)) % 10
        new = f"{whole}.{frac[:-1]}{last}"
    else:
        n = int(digits)
        if 1900 <= n <= 2030:
            new = str(n + rng.choice([-3, -2, -1, 1, 2, 3]))
        else:
            step = max(1, round(n * rng.uniform(0.1, 0.5)))
            new = str(n + step if rng.random() < 0.5 or n - step < 0 else n - step)
        if "," in raw:
            new = f"{int(new):,}"
    return value[: m.start()] + new + value[m.end() :]


def reworded(sentence: str, rng: random.Random) -> str:
    """Up to two words that are neither values nor names dropped (half the time)."""
    if rng.random() < 0.5:
        return sentence
    spans = [(v.start, v.end) for v in values(sentence)]
    keep_names = names(sentence)
    tokens = list(re.finditer(r"\b[a-z][a-z'-]{3,}\b", sentence))
    droppable = [
        t
        for t in tokens
        if t.group().lower() not in keep_names and not any(s <= t.start() < e for s, e in spans)
    ]
    if not droppable:
        return sentence
    out = sentence
    for t in sorted(rng.sample(droppable, min(2, len(droppable))), key=lambda t: -t.start()):
        out = out[: t.start()] + out[t.end() :].lstrip(" ")
    return out


@dataclass
class Case:
    article: str
    split: str
    positive: bool
    sentence: str
    changed_to: str | None  # the value the positive copy gives
    passages: list[Passage]  # the copy's paragraphs, then the distractors


def build_cases(root: Path, articles: Sequence[str]) -> list[Case]:
    texts = {a: read_article(root / a) for a in articles}
    # Distractor paragraphs: every paragraph of every article, by split and folder.
    pool: dict[tuple[str, str], list[tuple[str, Passage, frozenset[str]]]] = {}
    for a, text in texts.items():
        title = text.split("\n", 1)[0].strip()
        for p in passages_of(f"bbc:{a}", title, text, "BBC", None)[1:]:
            key = (split_of(a), a.split("/")[0])
            pool.setdefault(key, []).append((a, p, term_set(p.text)))
    cases: list[Case] = []
    for a in articles:
        text = texts[a]
        rng = random.Random(f"{SALT}:{a}")
        title = text.split("\n", 1)[0].strip()
        paras = paragraphs(text)[1:]
        sents = [
            (pi, s + ps, e + ps)
            for pi, (ps, pe) in enumerate(paras)
            for s, e in sentence_spans(text[ps:pe])
        ]
        usable = [
            (pi, s, e)
            for pi, s, e in sents
            if len(text[s:e].split()) >= 8 and any(changed(v.text, rng) for v in values(text[s:e]))
        ]
        if not usable:
            continue
        pi, s, e = rng.choice(usable)
        sentence = text[s:e]
        vals = [v for v in values(sentence) if changed(v.text, random.Random(0))]
        target = rng.choice(vals)
        new_value = changed(target.text, rng)
        assert new_value is not None
        copy_sentence = reworded(sentence[: target.start] + new_value + sentence[target.end :], rng)
        copy_text = text[:s] + copy_sentence + text[e:]
        keep_sentence = reworded(sentence, rng)
        lo, hi = max(0, pi - 1), min(len(paras), pi + 2)
        part = "\n\n".join(
            text[ps:pe] if i != pi else text[ps:pe].replace(sentence, keep_sentence, 1)
            for i, (ps, pe) in enumerate(paras[lo:hi], start=lo)
        )
        sterms = _content(sentence)
        ranked = sorted(
            (x for x in pool.get((split_of(a), a.split("/")[0]), []) if x[0] != a),
            key=lambda x: -len(sterms & x[2]),
        )
        distractors = [p for _, p, _ in ranked[:3]]
        split = split_of(a)
        cases.append(
            Case(
                a,
                split,
                True,
                sentence,
                new_value,
                [
                    *passages_of(f"copy:{a}", title, copy_text, "Wire Service", "2005-06-01"),
                    *distractors,
                ],
            )
        )
        cases.append(
            Case(
                a,
                split,
                False,
                sentence,
                None,
                [
                    *passages_of(f"part:{a}", title, part, "Daily Digest", "2005-03-01"),
                    *distractors,
                ],
            )
        )
    return cases


@dataclass(frozen=True)
class Pair:
    """One answer sentence against one sentence of another document."""

    doc_id: str
    overlaps: tuple[float, ...]  # by MEASURES
    names: float
    differs: bool
    gives_change: bool  # it states the positive's changed value
    any_new_value: bool  # it holds a value the answer sentence lacks (the baseline)


def pairs_of(case: Case) -> list[Pair]:
    out: list[Pair] = []
    mine = _content(case.sentence)
    for p in case.passages:
        for s, e in sentence_spans(p.text) or [(0, len(p.text))]:
            text = p.text[s:e]
            c = compare(case.sentence, text)
            theirs = _content(text)
            new_keys = {v.text for v in c.other}
            out.append(
                Pair(
                    p.doc_id,
                    tuple(overlap(mine, theirs, m) for m in MEASURES),
                    c.names,
                    c.differs,
                    case.changed_to is not None and case.changed_to in new_keys,
                    bool(c.other),
                )
            )
    return out


def outcome(
    case: Case, pairs: Iterable[Pair], m: int, cut: float, min_names: float
) -> tuple[bool, bool]:
    """(flagged the changed value correctly, flagged anything falsely), like the detector:
    per document its best-aligned sentence over the cutoffs decides."""
    best: dict[str, Pair] = {}
    for p in pairs:
        if p.overlaps[m] < cut or p.names < min_names:
            continue
        if p.doc_id not in best or p.overlaps[m] > best[p.doc_id].overlaps[m]:
            best[p.doc_id] = p
    flagged = [p for p in best.values() if p.differs]
    hit = any(p.gives_change and p.doc_id.startswith("copy:") for p in flagged)
    false = any(not (case.positive and p.doc_id.startswith("copy:")) for p in flagged)
    return hit, false


def score(
    cases: Sequence[tuple[Case, list[Pair]]], m: int, cut: float, min_names: float
) -> dict[str, float]:
    pos = [o for c, ps in cases if c.positive for o in [outcome(c, ps, m, cut, min_names)]]
    neg = [o for c, ps in cases if not c.positive for o in [outcome(c, ps, m, cut, min_names)]]
    return metrics(pos, neg)


def metrics(pos: Sequence[tuple[bool, bool]], neg: Sequence[tuple[bool, bool]]) -> dict[str, float]:
    every = [*pos, *neg]
    return {
        "recall": sum(h for h, _ in pos) / max(1, len(pos)),
        "false_flag_rate": sum(f for _, f in every) / max(1, len(every)),
        "negative_false_flag_rate": sum(f for _, f in neg) / max(1, len(neg)),
        "positives": float(len(pos)),
        "negatives": float(len(neg)),
    }


def baseline(cases: Sequence[tuple[Case, list[Pair]]]) -> dict[str, float]:
    """Flag whenever another document's passage holds a value the sentence lacks."""
    pos: list[tuple[bool, bool]] = []
    neg: list[tuple[bool, bool]] = []
    for c, ps in cases:
        flagged = {p.doc_id for p in ps if p.any_new_value}
        hit = any(p.gives_change for p in ps)
        false = any(not (c.positive and d.startswith("copy:")) for d in flagged)
        (pos if c.positive else neg).append((hit and c.positive, false))
    return metrics(pos, neg)


def _objective(r: dict[str, float]) -> tuple[bool, float, float]:
    return (r["false_flag_rate"] <= MAX_FALSE_FLAGS, r["recall"], -r["false_flag_rate"])


def fit(
    cases: Sequence[tuple[Case, list[Pair]]],
) -> dict[str, tuple[float, float, dict[str, float]]]:
    """Per measure: the (overlap cutoff, names cutoff) best on these cases."""
    out = {}
    for m, measure in enumerate(MEASURES):
        grid = [(cut, nm, score(cases, m, cut, nm)) for cut in OVERLAP_GRID for nm in NAMES_GRID]
        # Ties go to the stricter cutoffs (fewer flags on text unlike the set).
        out[measure] = max(grid, key=lambda g: (*_objective(g[2]), g[0], g[1]))
    return out


NATURAL = Path(__file__).resolve().parent / "datasets" / "conflicts_natural.jsonl"


def natural_report(root: Path, rule: ConflictRule, path: Path = NATURAL) -> dict[str, object]:
    """The detector on sentence pairs of two train articles, found and labelled as
    ``evals/datasets/README.md`` says. Each pair is asked both ways: the answer sentence
    from one article, the other article's paragraphs as the other source. Recall counts a
    conflict flagged at the labelled sentence; a false flag is an agreeing pair flagged
    there. Nothing was fitted on these pairs, but they were read while the value types
    (weekdays, ranks) were added: development numbers."""
    texts: dict[str, str] = {}

    def text_of(article: str) -> str:
        if article not in texts:
            texts[article] = read_article(root / article)
        return texts[article]

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    tally: dict[str, dict[str, list[int]]] = {}
    missed: list[str] = []
    for row in rows:
        for mine, theirs in ((row["a"], row["b"]), (row["b"], row["a"])):
            a, a0, a1 = mine
            b, b0, b1 = theirs
            sentence = text_of(a)[a0:a1]
            other = text_of(b)
            title = other.split("\n", 1)[0].strip()
            found = disagreements(
                sentence, passages_of(f"bbc:{b}", title, other, "BBC", None), {f"bbc:{a}"}, rule
            )
            at_pair = any(d.start < b1 and b0 < d.end for d in found)
            base = bool(compare(sentence, other[b0:b1], rule.measure).other)
            conflict = row["label"] == "conflict"
            for split in (split_of(a), "all"):
                t = tally.setdefault(split, {"rule": [0, 0, 0, 0], "baseline": [0, 0, 0, 0]})
                for name, flag in (("rule", at_pair), ("baseline", base)):
                    # [conflicts flagged, conflicts, agreeing pairs flagged, agreeing pairs]
                    t[name][0 if conflict else 2] += flag
                    t[name][1 if conflict else 3] += 1
            if conflict and not at_pair:
                missed.append(f"{a} -> {b} ({row.get('kind')}: {row.get('about')})")
    out: dict[str, object] = {"pairs": len(rows), "missed": missed}
    for split, t in tally.items():
        out[split] = {
            name: {
                "recall": c[0] / max(1, c[1]),
                "false_flag_rate": c[2] / max(1, c[3]),
                "conflicts": c[1],
                "agreeing": c[3],
            }
            for name, c in t.items()
        }
    return out


def seed_flags(settings: Settings) -> dict[str, float]:
    """Flags on the seed suite's answers over corpus/albania-iran (one article)."""
    import tempfile

    from dossier.engine import Dossier
    from evals.loaders import load_seed
    from ingest.pipeline import Ingestor

    with tempfile.TemporaryDirectory() as tmp:
        s = settings.model_copy(update={"data_dir": Path(tmp), "conflict_detection": True})
        engine = Dossier(s)
        suite = load_seed(s)
        for name, folder in suite.collections.items():
            Ingestor(s, engine.store, engine.embedder).ingest(folder, name)
        asked = flagged = answered = 0
        for q in suite.questions:
            a = engine.ask(q.question, q.collection)
            asked += 1
            answered += not a.refused
            flagged += bool(a.conflicts)
        return {"questions": asked, "answered": answered, "flagged": flagged}


def bbc_flags(settings: Settings, limit: int) -> dict[str, object]:
    """Flags on the answers to bbc-qa-dev questions over the whole BBC corpus (one
    collection, as served). The corpus has near-duplicate reports, so a flag here may be
    true; each flagged answer is listed with both values for reading."""
    import tempfile

    from dossier.engine import Dossier
    from evals.loaders import BBC_COLLECTION, bbc_dev_rows
    from ingest.pipeline import Ingestor

    rows = bbc_dev_rows(settings)[:limit]
    with tempfile.TemporaryDirectory() as tmp:
        # Sentence vectors off: the ingest is several times faster and answers only
        # embed their candidate sentences on demand (the same answers, a little slower).
        s = settings.model_copy(
            update={"data_dir": Path(tmp), "conflict_detection": True, "sentence_vectors": False}
        )
        engine = Dossier(s)
        Ingestor(s, engine.store, engine.embedder).ingest(
            shared_dir(settings) / BBC_DIR, BBC_COLLECTION
        )
        answered = 0
        flagged: list[dict[str, object]] = []
        for row in rows:
            a = engine.ask(str(row["question"]), BBC_COLLECTION)
            answered += not a.refused
            for c in a.conflicts:
                flagged.append(
                    {
                        "id": row["id"],
                        "sentence": a.sentences[c.sentence].text,
                        "value": c.value,
                        "sources": [(x.value, x.doc_id, x.quote) for x in c.sources],
                    }
                )
        return {
            "questions": len(rows),
            "answered": answered,
            "answers_flagged": len({f["id"] for f in flagged}),
            "flags": flagged,
        }


def gate_metrics(synthetic: dict[str, float], natural: dict[str, object]) -> dict[str, float]:
    """The numbers ``[conflicts.*]`` of evals/thresholds.toml bound, for one detector."""
    every = natural["all"]
    assert isinstance(every, dict)
    return {
        "synthetic_recall": synthetic["recall"],
        "synthetic_false_flag_rate": synthetic["false_flag_rate"],
        "natural_recall": float(every["recall"]),
        "natural_false_flag_rate": float(every["false_flag_rate"]),
    }


def misses(metrics: dict[str, float], path: Path = THRESHOLDS) -> list[str]:
    """The bounds of ``[conflicts.min]`` / ``[conflicts.max]`` these metrics break."""
    out = []
    for name, (kind, bound) in load_thresholds("conflicts", path).items():
        value = metrics.get(name)
        if MetricResult(name, value, None, None, 0, (kind, bound)).passed:
            continue
        out.append(
            f"{name}: not measured" if value is None else f"{name} = {value:.3f}, {kind} {bound}"
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--save", action="store_true", help=f"write the chosen rule to {RULE_PATH}")
    ap.add_argument("--out", type=Path, default=Path("evals/reports/conflicts.json"))
    ap.add_argument("--seed-answers", action="store_true")
    ap.add_argument(
        "--gate", action="store_true", help="exit 1 when a [conflicts.*] threshold is missed"
    )
    ap.add_argument("--limit", type=int, default=None, help="first N train-list articles")
    ap.add_argument(
        "--bbc-questions",
        type=int,
        default=0,
        help="also ask the first N bbc-qa-dev questions over the whole BBC corpus",
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    settings = Settings()
    root = shared_dir(settings)
    articles = [
        line.strip()
        for line in (root / TRAIN_LIST).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ][: args.limit]
    cases = build_cases(root / BBC_DIR, articles)
    scored = [(c, pairs_of(c)) for c in cases]
    by_split = {s: [x for x in scored if x[0].split == s] for s in ("train", "validation", "test")}
    fitted = fit(by_split["train"])
    fitted_report: dict[str, dict[str, object]] = {}
    report: dict[str, object] = {
        "articles": len(articles),
        "cases": len(cases),
        "fitted": fitted_report,
    }
    say(
        f"{len(articles)} articles -> {len(cases)} cases "
        + " ".join(f"{s}={len(v)}" for s, v in by_split.items())
    )
    choices = []
    for m, measure in enumerate(MEASURES):
        cut, nm, train = fitted[measure]
        val = score(by_split["validation"], m, cut, nm)
        choices.append((measure, m, cut, nm, val))
        fitted_report[measure] = {
            "min_overlap": cut,
            "min_names": nm,
            "train": train,
            "validation": val,
        }
        say(
            f"{measure:13s} cut={cut:.2f} names>={nm:.2f}  train {fmt(train)}  "
            f"validation {fmt(val)}"
        )
    measure, m, cut, nm, _ = max(choices, key=lambda c: _objective(c[4]))
    test = score(by_split["test"], m, cut, nm)
    base = baseline(by_split["test"])
    say(f"chosen on validation: {measure} min_overlap={cut:.2f} min_names={nm:.2f}")
    say(f"test   rule     {fmt(test)}")
    say(
        f"test   baseline {fmt(base)}  (any other-document passage with a value the sentence lacks)"
    )
    rule = ConflictRule(measure=measure, min_overlap=cut, min_names=nm)
    report.update({"chosen": asdict(rule), "test": test, "test_baseline": base})
    natural = natural_report(root / BBC_DIR, rule)
    for split in ("train", "validation", "test", "all"):
        r = natural.get(split)
        if isinstance(r, dict):
            say(
                f"natural {split:10s} rule recall={r['rule']['recall']:.3f} "
                f"false_flags={r['rule']['false_flag_rate']:.3f} "
                f"(n={r['rule']['conflicts']}+{r['rule']['agreeing']})  baseline "
                f"recall={r['baseline']['recall']:.3f} "
                f"false_flags={r['baseline']['false_flag_rate']:.3f}"
            )
    for line in natural["missed"]:  # type: ignore[attr-defined]
        say(f"  natural conflict missed: {line}")
    report["natural"] = natural
    measured = gate_metrics(test, {"all": natural["all"]["rule"]})  # type: ignore[index]
    base_natural = {"all": natural["all"]["baseline"]}  # type: ignore[index]
    report["gate"] = {"rule": measured, "baseline": gate_metrics(base, base_natural)}
    missed = misses(measured)
    report["misses"] = missed
    if args.seed_answers:
        seed = seed_flags(settings)
        say(f"seed answers over corpus/albania-iran: {seed}")
        report["seed_answers"] = seed
    if args.bbc_questions:
        bbc = bbc_flags(settings, args.bbc_questions)
        say(
            f"bbc-qa-dev answers over the BBC corpus: {bbc['questions']} questions, "
            f"{bbc['answered']} answered, {bbc['answers_flagged']} flagged"
        )
        for f in bbc["flags"]:  # type: ignore[attr-defined]
            say(f"  {f['id']}: {f['value']!r} in {str(f['sentence'])[:120]!r}")
            for value, doc, quote in f["sources"]:
                say(f"      {value!r} {doc}: {quote[:120]!r}")
        report["bbc_answers"] = bbc
    report["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    say(f"report: {args.out}  ({report['seconds']} s)")
    if args.save:
        RULE_PATH.write_text(
            json.dumps(
                {
                    **asdict(rule),
                    "fitted_by": "python -m evals.conflicts --save",
                    "train": fitted_report[measure]["train"],
                    "validation": fitted_report[measure]["validation"],
                    "test": test,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        say(f"saved {RULE_PATH}")
    for line in missed:
        say(f"MISSED: {line}")
    if args.gate and missed:
        say(f"FAILED: {len(missed)} threshold(s) missed for suite conflicts")
        return 1
    return 0


def fmt(r: dict[str, float]) -> str:
    return (
        f"recall={r['recall']:.3f} false_flags={r['false_flag_rate']:.3f} "
        f"(negatives {r['negative_false_flag_rate']:.3f}; "
        f"n={r['positives']:.0f}+{r['negatives']:.0f})"
    )


if __name__ == "__main__":
    sys.exit(main())
