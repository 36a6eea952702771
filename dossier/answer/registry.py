"""The answerer registry: ``DOSSIER_ANSWERER`` names one of :data:`ANSWERERS`.

Each factory imports its implementation when called, so choosing the extractive
answerer never imports the openai client, and no answerer module imports this one.
Other packages (the evals' broken answerers) add entries with :func:`register_answerer`.
"""

from __future__ import annotations

from collections.abc import Callable

from dossier.answer.base import Answerer
from dossier.errors import ConfigurationError
from dossier.settings import Settings

AnswererFactory = Callable[[Settings], Answerer]
ANSWERERS: dict[str, AnswererFactory] = {}


def register_answerer(name: str) -> Callable[[AnswererFactory], AnswererFactory]:
    def add(factory: AnswererFactory) -> AnswererFactory:
        ANSWERERS[name] = factory
        return factory

    return add


def build_answerer(settings: Settings, name: str | None = None) -> Answerer:
    name = name or settings.answerer
    try:
        factory = ANSWERERS[name]
    except KeyError:
        raise ConfigurationError(
            f"Unknown answerer {name!r}; choose one of {', '.join(sorted(ANSWERERS))}."
        ) from None
    return factory(settings)


@register_answerer("extractive")
def _extractive(settings: Settings) -> Answerer:
    """The default: the passages' own sentences, chosen by ``DOSSIER_ANSWER_MODEL``."""
    return _extractive_with(settings, settings.answer_model == "neural")


@register_answerer("extractive-neural")
def _extractive_neural(settings: Settings) -> Answerer:
    return _extractive_with(settings, True)


@register_answerer("extractive-linear")
def _extractive_linear(settings: Settings) -> Answerer:
    return _extractive_with(settings, False)


def _extractive_with(settings: Settings, neural: bool) -> Answerer:
    from dossier.answer.extractive import ExtractiveAnswerer

    return ExtractiveAnswerer(
        model_path=settings.answer_model_path,
        max_sentences=settings.max_answer_sentences,
        threshold=settings.answerable_threshold,
        neural=neural,
        neural_path=settings.neural_model_path,
        neural_threads=settings.embed_threads,
    )


@register_answerer("rules")
def _rules(settings: Settings) -> Answerer:
    from dossier.answer.extractive import RulesAnswerer

    return RulesAnswerer(
        max_sentences=settings.max_answer_sentences,
        min_coverage=settings.refusal_min_coverage,
        min_similarity=settings.refusal_min_similarity,
        min_sentence_similarity=settings.refusal_min_sentence_similarity,
    )


@register_answerer("cosine")
def _cosine(settings: Settings) -> Answerer:
    from dossier.answer.extractive import CosineAnswerer

    return CosineAnswerer()


@register_answerer("llm")
def _llm(settings: Settings) -> Answerer:
    missing = [
        f"DOSSIER_{name.upper()}"
        for name in ("llm_base_url", "llm_model")
        if not getattr(settings, name)
    ]
    if missing:
        raise ConfigurationError(
            f"DOSSIER_ANSWERER=llm needs {' and '.join(missing)}: the base URL of an "
            "OpenAI-compatible endpoint (e.g. http://127.0.0.1:8080/v1) and the model it "
            "serves; set DOSSIER_LLM_API_KEY too if the endpoint wants a key."
        )
    from dossier.answer.extractive import ExtractiveAnswerer
    from dossier.answer.llm import LLMAnswerer  # the openai client is only imported when used

    gate = _extractive(settings)
    assert isinstance(gate, ExtractiveAnswerer)
    return LLMAnswerer(settings, fallback=gate, gate=gate)
