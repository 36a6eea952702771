"""Conversations: the standalone question a follow-up turn stands for.

Retrieval and the answer model work on one question. In a conversation the latest
message often does not stand alone ("How far did its shares fall?"), so a
:class:`Condenser` turns the history plus the latest message into the question that
is actually searched and answered (``Answer.standalone_question``).

* :class:`OfflineCondenser` (the default, no model): walks the conversation turn by
  turn, keeping the current topic's salient words: names, and the rarest content
  words, from the user's questions and from the answers. A message that leans on the
  conversation (a pronoun, "there", "else", a leading "And", an ellipsis of a few
  words) gets the topic's words appended in brackets; a message with none of those
  cues, names of its own and nothing in common with the topic is a topic switch and
  is searched as typed, and the topic starts again from it.
* :class:`LLMCondenser`: asks the configured OpenAI-compatible model to rewrite the
  message, unless the offline rules find a topic switch; the offline form is used when
  the call fails or the rewrite shares no word with the conversation (a model that
  answered, or invented a subject).

Only the latest turns are read (``bounded_history``): a long conversation keeps its
end, never its beginning.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from dossier.errors import InvalidInput
from dossier.text import normalized, sentence_spans, stopwords, terms, words
from dossier.verify.citations import strip_markers

if TYPE_CHECKING:
    from dossier.llm.client import OpenAIChat

log = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant")
Method = Literal["as-asked", "offline", "topic-switch", "llm"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Standalone:
    """What a conversation's latest message is taken to ask."""

    question: str  # searched and answered
    asked: str  # the latest message as typed
    method: Method
    carried: tuple[str, ...] = ()  # words brought in from earlier turns


# -- the history ------------------------------------------------------------------


def bounded_history(
    messages: Sequence[Message], max_turns: int, max_chars: int
) -> tuple[list[Message], str]:
    """(the history to read, the latest user message), validated.

    System messages are dropped (clients send their own prompts; Dossier has its
    rules). Of the rest, the latest ``max_turns`` user turns and their replies are
    kept, then older messages are dropped until the history fits ``max_chars``.
    """
    if not messages:
        raise InvalidInput("'messages' is empty; send at least one message with role 'user'.")
    last = messages[-1]
    if last.role != "user":
        raise InvalidInput(
            f"The last message has role {last.role!r}; the conversation must end with the "
            "user's question (role 'user')."
        )
    if not last.content.strip():
        raise InvalidInput("The last message is empty; send the question as its 'content'.")
    history = [m for m in messages[:-1] if m.role != "system" and m.content.strip()]
    users = [i for i, m in enumerate(history) if m.role == "user"]
    if max_turns <= 0:
        history = []
    elif len(users) > max_turns:
        history = history[users[-max_turns] :]
    while history and sum(len(m.content) for m in history) > max_chars:
        history = history[1:]
    return history, last.content.strip()


def shown_sentences(history: Sequence[Message]) -> frozenset[str]:
    """The sentences of earlier answers (normalized, markers removed)."""
    out: set[str] = set()
    for m in history:
        if m.role != "assistant":
            continue
        text = strip_markers(m.content)
        out.update(normalized(text[a:b]) for a, b in sentence_spans(text))
    return frozenset(out)


# -- salient words --------------------------------------------------------------------

# Words that make a message lean on what came before.
_ANAPHORA_WORDS = (
    "it its they them their theirs he him his she her hers this that these those "
    "there then else such former latter"
)
_ANAPHORA = frozenset(_ANAPHORA_WORDS.split())
# Common words that a small stop list lets through and that carry no topic.
_PLAIN_WORDS = (
    "was were has have had been being get got going out what's who's also will would "
    "could should can may might new last first year years said says one two three "
    "four five six seven eight nine ten hundred thousand million"
)
_PLAIN = _ANAPHORA | frozenset(_PLAIN_WORDS.split())
_LEADING_FOLLOW_UP = re.compile(r"^\s*(?:and|but|so|also|what about|how about|what else)\b", re.I)
_NAME_WORD = r"(?:[A-Z][\w'’&.-]*\w|[A-Z])"
# "Simon Fuller", "Ruud van Nistelrooy", "Bank of England", "19 Entertainment", "50 Cent".
_ENTITY_RUN = re.compile(
    rf"(?:\d+\s+)?{_NAME_WORD}(?:\s+(?:(?:of|de|van|von|der|la|le|al|the)\s+)?{_NAME_WORD})*"
)
# An answer that carries no topic: Dossier's refusal (answering.REFUSAL_TEXT).
_REFUSAL_START = "the corpus does not say"


def _strip_possessive(name: str) -> str:
    return re.sub(r"['’]s?$", "", name)


def entities(text: str) -> list[str]:
    """Capitalized runs ("Simon Fuller", "19 Entertainment", "EMI") in order, deduplicated.

    A sentence's first word counts only when it is not a common word, so "Why" and
    "The" are not names, while "Usher's nominations" keeps "Usher".
    """
    stop = stopwords()
    found: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        for m in _ENTITY_RUN.finditer(sentence):
            phrase = _strip_possessive(m.group(0).strip())
            first, *rest = phrase.split()
            at_start = m.start() == 0 or sentence[: m.start()].strip() in {'"', "“", "'", "‘"}
            if at_start and first.lower() in stop:
                phrase = " ".join(rest)
            if phrase and phrase.lower() not in stop and phrase not in found:
                found.append(phrase)
    return found


@lru_cache(maxsize=1)
def _common_words() -> frozenset[str]:
    """BM25's short stop list, NLTK's longer one (shipped inside llama-index), and _PLAIN:
    a carried word must name something ("about" has a high idf in news and names nothing)."""
    from llama_index.core.utils import globals_helper

    return stopwords() | frozenset(globals_helper.stopwords) | _PLAIN


def rare_words(text: str, idf: Callable[[str], float], k: int) -> list[str]:
    """The ``k`` content words of ``text`` with the highest idf, as written."""
    stop = _common_words()
    seen: dict[str, float] = {}
    for w in words(strip_markers(text)):
        if w in stop or len(w) < 3 or w.isdigit() or w in seen:
            continue
        stem = terms(w)
        seen[w] = idf(stem[0]) if stem else 0.0
    return sorted(seen, key=lambda w: -seen[w])[:k]


def _stems(text: str) -> set[str]:
    return set(terms(text))


def leans_on_history(question: str) -> bool:
    """Pronouns, "there", "else", a leading "And…", or too few words to stand alone."""
    ws = words(question)
    if _LEADING_FOLLOW_UP.search(question) or any(w in _ANAPHORA for w in ws):
        return True
    content = [w for w in ws if w not in stopwords()]
    return len(content) <= 2


@dataclass
class Topic:
    """The salient words of the current topic, most recent first."""

    names: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)

    def stems(self) -> set[str]:
        return _stems(" ".join(self.names + self.words))

    def absorb(self, text: str, idf: Callable[[str], float], n_words: int) -> None:
        """Put ``text``'s names and rarest words first (a later mention is fresher)."""
        names = entities(strip_markers(text))
        self.names = names + [n for n in self.names if n not in names]
        fresh = rare_words(text, idf, n_words)
        self.words = fresh + [w for w in self.words if w not in fresh]


@dataclass(frozen=True)
class CarryPolicy:
    """How much of the topic a follow-up carries.

    The defaults are what ``python -m training.tune_condenser`` chose on the validation
    conversations (follow-up hit@5 1.00 and key facts 0.80, against 0.40 / 0.30 asked
    as typed): the latest name and two rare words of the user's questions. Words from
    Dossier's own answers, more names, and skipping sentences already shown all scored
    lower there, so they are off.
    """

    names: int = 1
    words: int = 2
    question_words: int = 3  # rarest words taken from each user question
    answer_words: int = 0  # and from each answer (0: answers are not read)


class Condenser(ABC):
    name: str

    @abstractmethod
    def condense(
        self, history: Sequence[Message], question: str, idf: Callable[[str], float]
    ) -> Standalone: ...


class OfflineCondenser(Condenser):
    """Carries the topic's names and rare words into follow-ups; no model."""

    name = "offline"

    def __init__(self, policy: CarryPolicy | None = None) -> None:
        self.policy = policy or CarryPolicy()

    def _step(self, topic: Topic, question: str) -> Standalone:
        if not topic.names and not topic.words:
            return Standalone(question, question, "as-asked")
        own = _stems(question)
        topic_stems = topic.stems()
        new_names = [n for n in entities(question) if not (_stems(n) & topic_stems)]
        if not leans_on_history(question) and new_names and not (own & topic_stems):
            return Standalone(question, question, "topic-switch")
        p = self.policy
        names = [n for n in topic.names[: p.names] if not _stems(n) <= own]
        # A word already in the question or inside a carried name is not repeated.
        known = own | _stems(" ".join(names))
        carried = names + [w for w in topic.words[: p.words] if not _stems(w) <= known]
        if not carried:
            return Standalone(question, question, "as-asked")
        return Standalone(f"{question} ({'; '.join(carried)})", question, "offline", tuple(carried))

    def condense(
        self, history: Sequence[Message], question: str, idf: Callable[[str], float]
    ) -> Standalone:
        p = self.policy
        topic = Topic()
        for m in history:
            if m.role == "user":
                step = self._step(topic, m.content.strip())
                if step.method == "topic-switch":
                    topic = Topic()
                topic.absorb(m.content, idf, p.question_words)
            elif p.answer_words and not m.content.strip().lower().startswith(_REFUSAL_START):
                topic.absorb(m.content, idf, p.answer_words)
        return self._step(topic, question)


CONDENSE_PROMPT = """Rewrite the user's last question so that it can be understood without the \
conversation: replace pronouns and vague references with what they refer to. Keep the \
question's meaning and wording otherwise; do not answer it. If it already stands alone, \
repeat it unchanged. Reply with the rewritten question only."""


class LLMCondenser(Condenser):
    """The configured model rewrites the question; the offline form when that fails."""

    name = "llm"

    def __init__(self, chat: OpenAIChat, fallback: Condenser | None = None) -> None:
        self.chat = chat
        self.fallback = fallback or OfflineCondenser()

    def close(self) -> None:
        """Close the client's connections now rather than at garbage collection."""
        self.chat.close()

    def _messages(self, history: Sequence[Message], question: str) -> list[dict[str, str]]:
        lines = [f"{m.role}: {strip_markers(m.content).strip()}" for m in history]
        return [
            {"role": "system", "content": CONDENSE_PROMPT},
            {
                "role": "user",
                "content": "Conversation:\n"
                + "\n".join(lines)
                + f"\n\nLast question: {question}\n\nStandalone question:",
            },
        ]

    def condense(
        self, history: Sequence[Message], question: str, idf: Callable[[str], float]
    ) -> Standalone:
        offline = self.fallback.condense(history, question, idf)
        if not history or offline.method == "topic-switch":
            # A message that stands alone on a new topic is not sent to the model: a small
            # model pulled bbc-chat's topic switches back to the old topic (SmolLM2 run).
            return offline
        from dossier.llm.client import LLMFailure

        try:
            raw = self.chat.complete(self._messages(history, question))
        except LLMFailure as exc:
            log.warning("condensing with the LLM failed, using the offline form: %s", exc)
            return offline
        rewritten = " ".join(raw.strip().strip('"').split())
        rewritten = re.sub(r"^(?:standalone question|question)\s*:\s*", "", rewritten, flags=re.I)
        context = _stems(" ".join(m.content for m in history)) | _stems(question)
        if not rewritten or len(rewritten) > 400 or not (_stems(rewritten) & context):
            log.info("the LLM's rewrite %r shares nothing with the conversation", rewritten[:80])
            return offline
        return Standalone(rewritten, question, "llm")


def build_condenser(chat: OpenAIChat | None) -> Condenser:
    return LLMCondenser(chat) if chat is not None else OfflineCondenser()
