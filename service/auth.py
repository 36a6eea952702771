"""Who is calling: API keys (Bearer), their scope, and the per-caller rate limit.

Every /v1 route depends on :func:`principal`. With auth off (the zero-config loopback
default) the caller is anonymous with every right, but still rate-limited by IP.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Annotated

import token_bucket
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dossier.engine import Dossier
from dossier.errors import (
    CollectionNotFound,
    NotAuthenticated,
    PermissionDenied,
    RateLimited,
)
from service.keys import PREFIX as KEY_PREFIX
from service.keys import ApiKey, KeyStore, Role

bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `dossier keys create`, as `Authorization: Bearer dsk_…`.",
)


class TokenBuckets:
    """Per-caller token buckets (the ``token-bucket`` package, from the Falcon project):
    ``burst`` requests at once, refilled at ``per_minute``.

    The library keeps every bucket it has seen; past ``max_callers`` the buckets are
    reset, which at worst gives each caller a fresh burst, and keeps memory bounded.
    """

    def __init__(self, per_minute: float, burst: int, max_callers: int = 100_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self.max_callers = max_callers
        self._lock = threading.Lock()
        self._new()

    def _new(self) -> None:
        self._storage = token_bucket.MemoryStorage()
        self._limiter = token_bucket.Limiter(self.rate, self.burst, self._storage)
        self._callers: set[str] = set()

    def take(self, caller: str) -> float:
        """0.0 when a request may go ahead, else the seconds until it may."""
        with self._lock:
            if caller not in self._callers:
                if len(self._callers) >= self.max_callers:
                    self._new()
                self._callers.add(caller)
            if self._limiter.consume(caller):
                return 0.0
            left = self._storage.get_token_count(caller)
        return max(0.001, (1.0 - left) / self.rate)


@dataclass(frozen=True)
class Principal:
    """The caller of one request: a key, or anonymous when auth is off."""

    key: ApiKey | None
    auth_required: bool

    @property
    def caller(self) -> str:
        return f"key {self.key.name!r}" if self.key else "anonymous"

    def require(self, role: Role) -> None:
        if self.key is not None and not self.key.at_least(role):
            raise PermissionDenied(
                f"This API key has the role {self.key.role!r}; this needs {role!r}. "
                f"Create one with `dossier keys create --role {role}`."
            )

    def covers(self, collection: str) -> bool:
        return self.key is None or self.key.covers(collection)

    def visible(self, names: list[str]) -> list[str]:
        return [n for n in names if self.covers(n)]

    def check(self, collection: str, role: Role, known: list[str] | None = None) -> str:
        """``collection`` if this caller may use it with ``role``; out of scope reads as
        unknown (404), never as forbidden, so a key cannot probe for other collections."""
        if not self.covers(collection):
            raise CollectionNotFound(collection, self.visible(known or []))
        self.require(role)
        return collection


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    state = request.app.state
    required: bool = state.auth_required
    limiter: TokenBuckets = state.rate_limiter
    key: ApiKey | None = None
    if (
        credentials is not None
        and not required
        and not credentials.credentials.startswith(f"{KEY_PREFIX}_")
    ):
        # OpenAI clients must send some key (the SDK refuses to start without one). Where
        # the API needs none, a token that is not a Dossier key counts as no key, so they
        # work unchanged; a dsk_ token that is wrong is still a 401 (a misconfigured app).
        credentials = None
    if credentials is not None:
        keys: KeyStore = state.keys
        key = keys.verify(credentials.credentials)
    # Failed attempts count against the client's IP, so guessing keys is rate-limited too.
    wait = limiter.take(f"key:{key.id}" if key else f"ip:{_client_ip(request)}")
    if wait > 0:
        raise RateLimited(wait)
    if credentials is not None and key is None:
        raise NotAuthenticated("Unknown or revoked API key; check the Authorization header.")
    if required and key is None:
        raise NotAuthenticated(
            "This API needs a key: send `Authorization: Bearer <key>`; an admin creates one "
            "with `dossier keys create --name NAME --collections a,b --role read`."
        )
    return Principal(key=key, auth_required=required)


PrincipalDep = Annotated[Principal, Depends(principal)]


def scoped(principal: Principal, dossier: Dossier, name: str | None, role: Role) -> str:
    """The collection a request may use with ``role``; unknown and out of scope look alike.

    Both say 404 and list only the collections this key can see, so a key learns nothing
    about collections outside its scope.
    """
    name = name or dossier.settings.default_collection

    def visible() -> list[str]:
        return principal.visible([c.name for c in dossier.collections()])

    if not principal.covers(name):
        raise CollectionNotFound(name, visible())
    principal.require(role)
    try:
        return dossier.collection(name)
    except CollectionNotFound:
        raise CollectionNotFound(name, visible()) from None
