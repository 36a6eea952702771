"""What every router needs from the app: the engine, and answering within the time limit.

Kept apart from ``service.app`` so routers in other modules (``service.openai_compat``)
depend on this, not on the module that includes them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from dossier.engine import Dossier
from dossier.errors import AnswerTimeout
from dossier.settings import Settings

T = TypeVar("T")


def get_dossier(request: Request) -> Dossier:
    engine: Dossier = request.app.state.dossier
    return engine


DossierDep = Annotated[Dossier, Depends(get_dossier)]


def answer_within(request: Request, fn: Callable[[], T]) -> T:
    """Run ``fn`` on the answer pool; 504 when it takes longer than the answer timeout.

    The work itself cannot be interrupted from here (an LLM call has its own timeout), so
    the pool is bounded and a late result is dropped.
    """
    settings: Settings = request.app.state.settings
    pool: ThreadPoolExecutor = request.app.state.answer_pool
    future = pool.submit(fn)
    try:
        return future.result(timeout=settings.answer_timeout_s)
    except FutureTimeout:
        future.cancel()
        raise AnswerTimeout(
            f"No answer within {settings.answer_timeout_s:g} s (DOSSIER_ANSWER_TIMEOUT_S); "
            "try again, or ask a narrower question."
        ) from None
