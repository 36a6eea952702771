"""The support scorers: the offline one against its labelled set, the LLM judge's parsing."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from dossier.engine import Dossier
from dossier.errors import ConfigurationError
from dossier.settings import Settings
from dossier.text import sentence_spans
from dossier.verify.features import acronyms, names, negations, numbers, pair_evidence, units
from dossier.verify.judge import LLMJudgeScorer, ScriptedChat, parse_json_reply
from dossier.verify.offline import OfflineSupportScorer
from dossier.verify.registry import SUPPORT_SCORERS, build_support_scorer
from tests.conftest import BBC, ROOT, SHARED, make_settings

PAIRS = ROOT / "evals" / "datasets" / "support_pairs.jsonl"
# The hard negatives issue #3 names; "contradiction" (antonyms) is labelled too but is
# beyond what surface checks can see, so it counts in accuracy, not in this recall.
HARD = {"number", "date", "name", "negation", "merge", "wrong_passage"}


def test_numbers_read_digits_and_words() -> None:
    assert numbers("within 24 hours and 3,000 members") == {24.0, 3000.0}
    assert numbers("twenty-four hours, three thousand people") == {24.0, 3000.0}
    assert numbers("no figures here") == set()


def test_names_skip_sentence_initial_function_words_and_keep_months() -> None:
    found = names("The US said on July 15 that Edi Rama met Mandiant.")
    assert {"us", "july", "edi", "rama", "mandiant"} <= found
    assert "the" not in found
    assert "may" not in names("Officials said they may act.")


def test_names_skip_function_words_that_open_a_paraphrase() -> None:
    assert names("Under the budget, Since Ireland won, Both clubs agreed.") == {"ireland"}
    assert names("He told US officials.") == {"us"}
    assert names("Mandiant ordered the diplomats out.") == {"mandiant"}


def test_numbers_break_at_digits_and_names_match_hyphens_and_possessives() -> None:
    assert numbers("$18 million (£9.25 million)") == {18.0, 1_000_000.0, 9.25}
    passage = "The UK's largest retailer, Wal-Mart, said 12 stores shut."
    sims = [0.9]
    _, reasons = pair_evidence(
        "Wal-Mart is the UK retailer that shut 12 stores.", passage, sims, 0.9
    )
    assert not any("name" in r for r in reasons), reasons
    _, reasons = pair_evidence(
        "Wal-Tesco is the UK retailer that shut 12 stores.", passage, sims, 0.9
    )
    assert any("wal-tesco" in r for r in reasons), reasons


def test_acronyms_units_and_negations() -> None:
    assert "uae" in acronyms("against Israel, the United Arab Emirates, Jordan")
    assert units("a week-long probe over 3 months") == {"week", "month"}
    assert negations("Iran has not yet responded") == 1
    assert negations("Iran hasn't responded") == 1
    assert negations("Iran responded") == 0


@pytest.fixture(scope="module")
def offline(seed_engine: Dossier) -> OfflineSupportScorer:
    return OfflineSupportScorer(
        seed_engine.embedder, threshold=seed_engine.settings.support_threshold
    )


def test_offline_scorer_flags_the_classic_failures(offline: OfflineSupportScorer) -> None:
    passage = (
        "Prime Minister Edi Rama’s administration ordered all Iranian diplomats and staff from "
        "the capital Tirana within 24 hours. Iran has not yet responded to the allegations."
    )
    # Digits and words are the same number to the hard check.
    assert offline.score(
        "Edi Rama’s administration ordered all Iranian diplomats and staff from the capital "
        "Tirana within twenty-four hours.",
        passage,
    ).supported
    verdict = offline.score("Iranian diplomats were told to leave within 48 hours.", passage)
    assert not verdict.supported and any("48" in r for r in verdict.reasons)
    assert not offline.score("Iran has responded to the allegations.", passage).supported
    assert not offline.score("Mandiant ordered the diplomats out of Tirana.", passage).supported
    quoted = offline.score("Iran has not yet responded to the allegations.", passage)
    assert quoted.supported and quoted.score == 1.0


def test_offline_scorer_on_its_labelled_set(offline: OfflineSupportScorer) -> None:
    rows = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 80
    kinds = Counter(r["kind"] for r in rows if not r["supported"])
    assert set(kinds) >= HARD, kinds
    tp = fp = tn = fn = 0
    hard_caught = hard_total = 0
    for r in rows:
        predicted = offline.score(r["sentence"], r["passage"]).supported
        if r["supported"]:
            tp += predicted
            fn += not predicted
        else:
            fp += predicted
            tn += not predicted
            if r["kind"] in HARD:
                hard_total += 1
                hard_caught += not predicted
    accuracy = (tp + tn) / len(rows)
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    hard_recall = hard_caught / hard_total
    print(
        f"\nsupport scorer: n={len(rows)} accuracy={accuracy:.3f} precision={precision:.3f} "
        f"recall={recall:.3f} hard-negative recall={hard_recall:.3f} ({hard_caught}/{hard_total})"
    )
    # Development numbers: these pairs were written beside the first, hand-set scorer. The
    # learned scorer's goals are on its held-out test split (training/train_support.py:
    # accuracy 0.975, hard-negative recall 0.979, paraphrase recall 0.950); here it measured
    # accuracy 0.907, paraphrase recall 0.949 once trained on hand-written paraphrases
    # (0.833 / 0.625 before them).
    assert hard_recall >= 0.90
    assert accuracy >= 0.85
    assert recall >= 0.85


def test_parse_json_reply_tolerates_fences_and_prose() -> None:
    assert parse_json_reply('Sure!\n```json\n{"claims": ["a"]}\n```') == {"claims": ["a"]}
    with pytest.raises(ValueError):
        parse_json_reply("no json at all")


def test_llm_judge_decomposes_then_judges_each_claim() -> None:
    chat = ScriptedChat(
        [
            '{"claims": ["Albania expelled Iranian diplomats.", "They had 48 hours."]}',
            '{"verdict": "supported", "reason": "stated"}',
            '```json\n{"verdict": "unsupported", "reason": "passage says 24 hours"}\n```',
        ]
    )
    judge = LLMJudgeScorer(chat)
    verdict = judge.score("Albania expelled Iranian diplomats, giving them 48 hours.", "passage")
    assert not verdict.supported
    assert verdict.score == 0.5
    assert any("24 hours" in r for r in verdict.reasons)
    assert len(chat.prompts) == 3
    assert (
        "Albania expelled Iranian diplomats, giving them 48 hours." in chat.prompts[0][0]["content"]
    )
    assert "They had 48 hours." in chat.prompts[2][0]["content"]


def test_llm_judge_counts_garbage_against_support() -> None:
    judge = LLMJudgeScorer(ScriptedChat(["I cannot split this.", "maybe?"]))
    verdict = judge.score("A claim.", "A passage.")
    # An undecomposable sentence is judged whole; an unreadable verdict is a "no".
    assert verdict.supported is False
    assert "unparseable" in verdict.reasons[0]


def test_registry_selects_by_settings(tmp_path: Path, seed_engine: Dossier) -> None:
    settings = make_settings(tmp_path, support_scorer="offline")
    assert isinstance(build_support_scorer(settings, seed_engine.embedder), OfflineSupportScorer)
    auto = make_settings(tmp_path, llm_base_url="http://127.0.0.1:9/v1", llm_model="judge")
    assert isinstance(build_support_scorer(auto, seed_engine.embedder), LLMJudgeScorer)
    with pytest.raises(ConfigurationError, match="DOSSIER_LLM_BASE_URL"):
        build_support_scorer(make_settings(tmp_path, support_scorer="llm-judge"))
    with pytest.raises(ConfigurationError, match="one of"):
        build_support_scorer(make_settings(tmp_path, support_scorer="nope"))
    assert set(SUPPORT_SCORERS) == {"offline", "llm-judge"}


def test_settings_default_is_auto() -> None:
    assert Settings(_env_file=None).support_scorer == "auto"  # type: ignore[call-arg]


PARAPHRASES = ROOT / "training" / "data" / "support_paraphrases.jsonl"


@pytest.mark.skipif(not BBC.is_dir(), reason="needs ../shared/benchmarks/news-bbc")
def test_paraphrase_dataset_follows_its_rules() -> None:
    """evals/datasets/README.md: split by article, offsets on a sentence, no invented numbers."""
    from evals.loaders import read_article
    from evals.splits import bbc_dev_split

    rows = [json.loads(line) for line in PARAPHRASES.read_text(encoding="utf-8").splitlines()]
    qa = SHARED / "benchmarks" / "bbc-qa-dev"
    train = set((qa / "train-articles.txt").read_text(encoding="utf-8").split())
    dev = [json.loads(line) for line in (qa / "questions.jsonl").read_text().splitlines()]
    dev_split = bbc_dev_split(dev)
    assert len({r["id"] for r in rows}) == len(rows)
    splits: Counter[str] = Counter()
    for r in rows:
        split = "train" if r["doc"] in train else dev_split[r["doc"]]
        assert r["id"].startswith(f"para-{split[:2]}-"), r["id"]
        splits[split] += 1
        text = read_article(BBC / r["doc"])
        assert (r["start"], r["end"]) in sentence_spans(text), r["id"]
        source = text[r["start"] : r["end"]]
        assert r["paraphrase"].strip() != source.strip(), r["id"]
        # A paraphrase states no number its source sentence lacks.
        assert numbers(r["paraphrase"]) <= numbers(source), r["id"]
    # Training articles are none of bbc-qa-dev's, whose split assigns the others.
    assert not train & set(dev_split)
    assert splits["train"] >= 250 and splits["validation"] >= 30 and splits["test"] >= 30
