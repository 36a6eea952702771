"""The LLM judge: claim decomposition, then a verdict per claim from a chat model.

It talks through :class:`dossier.chat.OpenAIChat`, so it has the answerer's timeout
and retries. :class:`ScriptedChat` ships with the package so the judge's prompting
and parsing are tested without a network; it judges nothing itself.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from dossier.verify.support import SupportScorer, SupportVerdict

log = logging.getLogger(__name__)


class ChatClient(Protocol):
    """The one call the judge needs from a chat model: messages in, text out."""

    def complete(self, messages: list[dict[str, str]]) -> str: ...


@dataclass
class ScriptedChat:
    """A chat client that replays scripted replies and records every prompt.

    It ships with the package so the judge's prompting and parsing are tested
    without a network; it does not judge anything itself.
    """

    replies: list[str]
    prompts: list[list[dict[str, str]]] = field(default_factory=list)

    def complete(self, messages: list[dict[str, str]]) -> str:
        self.prompts.append(messages)
        if not self.replies:
            raise AssertionError("ScriptedChat ran out of replies")
        return self.replies.pop(0)


DECOMPOSE_PROMPT = (
    "Split the sentence into short, self-contained factual claims. Resolve pronouns. "
    'Reply with JSON only: {"claims": ["...", "..."]}.\n\nSentence: '
)
VERDICT_PROMPT = (
    "Does the passage, and nothing else, support the claim? Numbers, dates, names and "
    "negations must match exactly. Reply with JSON only: "
    '{"verdict": "supported" | "unsupported", "reason": "..."}.\n\n'
)
_JSON = re.compile(r"\{.*\}|\[.*\]", re.DOTALL)


def parse_json_reply(reply: str) -> Any:
    """The first JSON object or array in a model reply (models wrap JSON in prose or fences)."""
    m = _JSON.search(reply)
    if not m:
        raise ValueError(f"no JSON in reply: {reply[:80]!r}")
    return json.loads(m.group())


class LLMJudgeScorer(SupportScorer):
    """Claim decomposition, then a supported/unsupported verdict per claim."""

    name = "llm-judge"

    def __init__(self, client: ChatClient) -> None:
        self.client = client

    def claims(self, text: str) -> list[str]:
        reply = self.client.complete([{"role": "user", "content": DECOMPOSE_PROMPT + text}])
        try:
            data = parse_json_reply(reply)
            items = data["claims"] if isinstance(data, dict) else data
            claims = [str(c).strip() for c in items if str(c).strip()]
        except (ValueError, KeyError, TypeError):
            # A judge that cannot decompose still judges the whole sentence as one claim.
            log.warning("unparseable claim decomposition; judging the sentence whole")
            return [text]
        return claims or [text]

    def verdict(self, claim: str, passage: str) -> tuple[bool, str]:
        prompt = f"{VERDICT_PROMPT}Passage: {passage}\n\nClaim: {claim}"
        reply = self.client.complete([{"role": "user", "content": prompt}])
        try:
            data = parse_json_reply(reply)
            verdict = str(data["verdict"]).strip().lower()
            reason = str(data.get("reason", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            # An unreadable verdict counts against support: a gate must not pass on noise.
            return False, f"unparseable verdict: {reply[:80]!r}"
        if verdict not in {"supported", "unsupported"}:
            return False, f"unknown verdict {verdict!r}"
        return verdict == "supported", reason

    def score(self, sentence: str, passage: str) -> SupportVerdict:
        claims = self.claims(sentence)
        results = [(c, *self.verdict(c, passage)) for c in claims]
        ok = sum(1 for _, good, _ in results if good)
        reasons = tuple(
            f"{'supported' if good else 'unsupported'}: {c} ({why})" for c, good, why in results
        )
        return SupportVerdict(ok == len(results), ok / len(results), reasons)
