"""The one place where Dossier's exceptions become HTTP responses."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dossier import errors
from service.schemas import ErrorPublic, OpenAIErrorPublic

log = logging.getLogger(__name__)

# Most specific first: the first matching class decides the status.
STATUS: list[tuple[type[errors.DossierError], int, str]] = [
    (errors.FileTooLarge, 413, "file_too_large"),
    (errors.AddressNotAllowed, 400, "address_not_allowed"),
    (errors.FetchFailed, 400, "fetch_failed"),
    (errors.InvalidInput, 400, "invalid_input"),
    (errors.NotAuthenticated, 401, "not_authenticated"),
    (errors.PermissionDenied, 403, "permission_denied"),
    (errors.CollectionNotFound, 404, "collection_not_found"),
    (errors.DocumentNotFound, 404, "document_not_found"),
    (errors.ConversationNotFound, 404, "conversation_not_found"),
    (errors.JobNotFound, 404, "job_not_found"),
    (errors.NotFound, 404, "not_found"),
    (errors.EmbedderMismatch, 409, "embedder_mismatch"),
    (errors.CollectionExists, 409, "collection_exists"),
    (errors.ConversationFull, 409, "conversation_full"),
    (errors.JobFinished, 409, "job_finished"),
    (errors.PayloadTooLarge, 413, "payload_too_large"),
    (errors.RateLimited, 429, "rate_limited"),
    (errors.AnswerTimeout, 504, "answer_timeout"),
    (errors.ModelNotInstalled, 503, "model_not_installed"),
    (errors.ConfigurationError, 503, "configuration_error"),
    (errors.BackendUnavailable, 503, "backend_unavailable"),
    (errors.DossierError, 500, "internal_error"),
]


# The OpenAI-compatible routes (service/openai_compat.py) answer in OpenAI's error shape,
# {"error": {"message", "type", "param", "code"}}, which the openai SDK and the clients built
# on it parse; the message is the same as on the rest of /v1, Dossier's kind becomes the code.
OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")


def is_openai_path(request: Request) -> bool:
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    return any(path == p or path.startswith(p + "/") for p in OPENAI_PATHS)


def _openai_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def _body(
    request: Request,
    kind: str,
    message: str,
    status: int,
    headers: Mapping[str, str] | None = None,
    param: str | None = None,
) -> JSONResponse:
    error: dict[str, object] = {"type": kind, "message": message}
    if is_openai_path(request):
        if status == 422:  # OpenAI says 400 for any invalid request (openai.BadRequestError)
            status = 400
        error = {"message": message, "type": _openai_type(status), "param": param, "code": kind}
    return JSONResponse(
        status_code=status,
        content={"error": error},
        headers=dict(headers) if headers else None,
    )


def _headers(exc: errors.DossierError) -> dict[str, str]:
    if isinstance(exc, errors.NotAuthenticated):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, errors.RateLimited):
        return {"Retry-After": str(exc.retry_after_s)}
    return {}


def _dossier_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.DossierError)
    for cls, status, kind in STATUS:
        if isinstance(exc, cls):
            if status >= 500:
                log.error("%s %s failed: %s", request.method, request.url.path, exc)
            message, param = str(exc), None
            if isinstance(exc, errors.CollectionNotFound) and is_openai_path(request):
                # There a collection is a model, named by the request's "model".
                kind, param = "model_not_found", "model"
                message = (
                    f"The model {exc.name!r} does not exist: models are Dossier's "
                    f"collections (GET /v1/models lists them). {message}"
                )
            return _body(request, kind, message, status, _headers(exc), param)
    raise AssertionError("unreachable: DossierError is last in STATUS")


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts, fields = [], []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
        fields.append(where)
    param = fields[0] if fields and fields[0] else None
    return _body(request, "invalid_input", "; ".join(parts) or "Invalid request.", 422, None, param)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        # Starlette's Allow names the methods of the first route on the path only; a path
        # served by several routes (GET and POST /v1/collections) must list them all.
        allow = ", ".join(sorted(_allowed(request.app, request.url.path)))
        return _body(
            request,
            "method_not_allowed",
            f"{request.method} is not allowed on {request.url.path}; use {allow}.",
            405,
            {"Allow": allow},
        )
    return _body(request, "http_error", str(exc.detail), exc.status_code, exc.headers)


def _allowed(app: FastAPI, path: str) -> set[str]:
    """The methods the OpenAPI schema documents for ``path`` (the contract clients see)."""
    methods: set[str] = set()
    for template, ops in app.openapi().get("paths", {}).items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            methods |= {m.upper() for m in ops if m in _HTTP_METHODS}
    return methods


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Logged with its traceback for us; the caller gets no stack trace.
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return _body(request, "internal_error", "Internal error; the server log has the details.", 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.DossierError, _dossier_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


# What each status means for a caller; every route documents the ones it can return.
DESCRIPTIONS = {
    400: "Bad input; the message says what to fix.",
    401: "No API key, or an unknown or revoked one (only when the API requires keys).",
    403: "The key's role does not allow this operation.",
    404: "Unknown collection, document, conversation or job (or one outside the key's scope).",
    405: "Method not allowed on this path; the Allow header lists the allowed ones.",
    409: "Collection built with another embedder, or (on create) already there; or a "
    "conversation at its message limit; or cancelling a job that already ended.",
    413: "Request body (or an uploaded file) over the size limit.",
    422: "Malformed request: wrong JSON, a missing or unknown field, a value out of range.",
    429: "Over this caller's rate limit; retry after the Retry-After header's seconds.",
    503: "A backend or model is unavailable.",
    504: "The answer took longer than the answer timeout.",
}
# Statuses any /v1 route can return: unparseable body, auth, body size, malformed request,
# rate limit, backend.
COMMON = (400, 401, 413, 422, 429, 503)


def errors_doc(*statuses: int, openai: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these statuses plus the common ones, with the error body
    (OpenAI's shape with ``openai=True``, where a malformed request is a 400, not a 422)."""
    out: dict[int | str, dict[str, Any]] = {}
    common = {s for s in COMMON if s != 422} if openai else set(COMMON)
    for status in sorted({*statuses, *common}):
        model = OpenAIErrorPublic if openai else ErrorPublic
        entry: dict[str, Any] = {"model": model, "description": DESCRIPTIONS[status]}
        if status == 429:
            entry["headers"] = {
                "Retry-After": {
                    "description": "Seconds until a request will be accepted.",
                    "schema": {"type": "integer"},
                }
            }
        if status == 401:
            entry["headers"] = {
                "WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}
            }
        out[status] = entry
    return out
