"""The support-scorer registry: ``DOSSIER_SUPPORT_SCORER`` names one of :data:`SUPPORT_SCORERS`.

* :mod:`~dossier.verify.support`: the :class:`SupportScorer` interface and its verdict.
* :mod:`~dossier.verify.features`: text features of a (sentence, passage) pair.
* :mod:`~dossier.verify.offline`: :class:`OfflineSupportScorer`, no network or LLM.
* :mod:`~dossier.verify.judge`: :class:`LLMJudgeScorer`, claims judged by a chat model.

Each factory imports its scorer when called, so no scorer module imports this one.
"""

from __future__ import annotations

from collections.abc import Callable

from llama_index.core.base.embeddings.base import BaseEmbedding

from dossier.errors import ConfigurationError
from dossier.settings import Settings
from dossier.verify.support import SupportScorer


def _offline(settings: Settings, embedder: BaseEmbedding | None) -> SupportScorer:
    from dossier.index.embeddings import build_embedder
    from dossier.verify.offline import OfflineSupportScorer

    return OfflineSupportScorer(
        embedder or build_embedder(settings), threshold=settings.support_threshold
    )


def _llm_judge(settings: Settings, embedder: BaseEmbedding | None) -> SupportScorer:
    if not settings.llm_base_url or not settings.llm_model:
        raise ConfigurationError(
            "The llm-judge support scorer needs DOSSIER_LLM_BASE_URL and DOSSIER_LLM_MODEL."
        )
    from dossier.llm.client import OpenAIChat
    from dossier.verify.judge import LLMJudgeScorer

    # The judge's verdicts are short JSON; temperature 0 keeps them repeatable.
    return LLMJudgeScorer(
        OpenAIChat.from_settings(settings.model_copy(update={"llm_temperature": 0.0}))
    )


SUPPORT_SCORERS: dict[str, Callable[[Settings, BaseEmbedding | None], SupportScorer]] = {
    "offline": _offline,
    "llm-judge": _llm_judge,
}


def build_support_scorer(
    settings: Settings, embedder: BaseEmbedding | None = None, name: str | None = None
) -> SupportScorer:
    """The scorer named in settings; "auto" is the judge when an endpoint is set, else offline."""
    name = name or settings.support_scorer
    if name == "auto":
        name = "llm-judge" if settings.llm_base_url and settings.llm_model else "offline"
    try:
        factory = SUPPORT_SCORERS[name]
    except KeyError:
        raise ConfigurationError(
            f"Unknown support scorer {name!r}; DOSSIER_SUPPORT_SCORER must be auto or one of "
            f"{', '.join(sorted(SUPPORT_SCORERS))}."
        ) from None
    return factory(settings, embedder)
