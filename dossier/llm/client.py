"""One client for every OpenAI-compatible call: the same timeout, retries and failure reasons.

The LLM answerer, the LLM judge and the OpenAI-compatible embedder all talk to an
endpoint that may be down, slow, rate-limited or dying mid-stream. They share this
module so each of them waits the same ``DOSSIER_LLM_TIMEOUT_S``, retries the same
failures (not listening, timeout, 429, 5xx) with the same doubling backoff that
honours ``Retry-After``, and reports the same human-readable reason.

``openai`` is imported when a client is made, never at import time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dossier.errors import BackendUnavailable
from dossier.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
# Retry-After beyond this is not waited for: the caller has a fallback.
MAX_RETRY_AFTER_S = 10.0


class LLMFailure(BackendUnavailable):
    """The endpoint gave no usable answer; ``str()`` is the reason shown to the caller.

    The LLM answerer catches it and falls back; anywhere else (an embedding
    endpoint) it is a 503 with that reason.
    """


def describe(exc: BaseException) -> str:
    """Why a call failed, in words a user of the API can act on."""
    import httpx
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return "the LLM endpoint timed out"
    if isinstance(exc, openai.APIConnectionError):
        return "the LLM endpoint could not be reached"
    if isinstance(exc, openai.APIStatusError):
        return f"the LLM endpoint answered HTTP {exc.status_code}"
    if isinstance(exc, httpx.TimeoutException):
        # openai<3 lets a timeout while reading a stream through as httpx's own error.
        return "the LLM endpoint timed out"
    if isinstance(exc, httpx.HTTPError):
        return f"the LLM stream broke off ({type(exc).__name__})"
    return f"the LLM call failed ({type(exc).__name__}: {exc})"


def _retryable(exc: BaseException) -> bool:
    import openai

    return isinstance(
        exc,
        # APIConnectionError includes APITimeoutError: not listening, reset, timed out.
        (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError),
    )


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@dataclass
class RetryPolicy:
    """Bounded retries with a doubling delay; ``Retry-After`` raises the delay (capped)."""

    retries: int = 2
    backoff_s: float = 0.5
    sleep: Callable[[float], None] = field(default=time.sleep)

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``, retried on transient failures; LLMFailure once they are spent."""
        import openai

        attempts = self.retries + 1
        for attempt in range(attempts):
            try:
                return fn()
            except Exception as exc:
                if not _retryable(exc):
                    if isinstance(exc, openai.APIError):  # 4xx: a retry gets the same answer
                        raise LLMFailure(describe(exc)) from exc
                    raise
                reason = describe(exc)
                if attempt + 1 == attempts:
                    raise LLMFailure(f"{reason} ({attempts} attempt(s))") from exc
                delay = self.backoff_s * 2**attempt
                delay = max(delay, min(_retry_after(exc) or 0.0, MAX_RETRY_AFTER_S))
                log.warning("%s; retrying in %.2f s", reason, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")


def openai_client(base_url: str | None, api_key: str | None, timeout_s: float) -> Any:
    """An ``openai.OpenAI`` whose own retries are off: :class:`RetryPolicy` does them."""
    import openai

    return openai.OpenAI(
        base_url=base_url,
        api_key=api_key or "not-needed",  # local servers take any key; the client wants one
        timeout=timeout_s,
        max_retries=0,
    )


class OpenAIChat:
    """Chat completions against an OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, …)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        max_tokens: int = 256,
        temperature: float = 0.0,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.policy = policy or RetryPolicy()
        self.client = openai_client(base_url, api_key, timeout_s)

    @classmethod
    def from_settings(
        cls, settings: Settings, sleep: Callable[[float], None] = time.sleep
    ) -> OpenAIChat:
        if not settings.llm_base_url or not settings.llm_model:
            raise LLMFailure("no LLM endpoint is configured")
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return cls(
            settings.llm_base_url,
            settings.llm_model,
            api_key=key,
            timeout_s=settings.llm_timeout_s,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
            policy=RetryPolicy(settings.llm_retries, settings.llm_backoff_s, sleep),
        )

    def close(self) -> None:
        self.client.close()

    def _create(self, messages: list[dict[str, str]], stream: bool) -> Any:
        return self.client.chat.completions.create(
            model=self.model,
            messages=messages,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            stream=stream,
        )

    def complete(self, messages: list[dict[str, str]]) -> str:
        """The whole reply text; LLMFailure when the endpoint fails after retries."""
        reply = self.policy.call(lambda: self._create(messages, stream=False))
        return str(reply.choices[0].message.content or "")

    def stream(self, messages: list[dict[str, str]]) -> Generator[str, None, None]:
        """Text deltas. Retries happen only before the first delta; LLMFailure after that.

        Closing the generator (a client that disconnected) closes the response, which
        stops generation on the server.
        """
        import httpx
        import openai

        response = self.policy.call(lambda: self._create(messages, stream=True))
        finished = False
        try:
            for chunk in response:
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.delta and choice.delta.content:
                    yield choice.delta.content
                if choice.finish_reason:
                    finished = True
        except (openai.APIError, httpx.HTTPError) as exc:
            # Text already went to the caller, so no retry: the caller's fallback replaces it.
            raise LLMFailure(f"the LLM stream broke off: {describe(exc)}") from exc
        finally:
            response.close()
        if not finished:
            raise LLMFailure("the LLM stream ended before the model finished")
