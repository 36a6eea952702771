"""The one place where Dossier's exceptions become HTTP responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dossier import errors

log = logging.getLogger(__name__)

# Most specific first: the first matching class decides the status.
STATUS: list[tuple[type[errors.DossierError], int, str]] = [
    (errors.InvalidInput, 400, "invalid_input"),
    (errors.CollectionNotFound, 404, "collection_not_found"),
    (errors.DocumentNotFound, 404, "document_not_found"),
    (errors.NotFound, 404, "not_found"),
    (errors.EmbedderMismatch, 409, "embedder_mismatch"),
    (errors.ModelNotInstalled, 503, "model_not_installed"),
    (errors.ConfigurationError, 503, "configuration_error"),
    (errors.BackendUnavailable, 503, "backend_unavailable"),
    (errors.DossierError, 500, "internal_error"),
]


def _body(kind: str, message: str, status: int) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"type": kind, "message": message}})


def _dossier_error(request: Request, exc: Exception) -> JSONResponse:
    for cls, status, kind in STATUS:
        if isinstance(exc, cls):
            if status >= 500:
                log.error("%s %s failed: %s", request.method, request.url.path, exc)
            return _body(kind, str(exc), status)
    raise AssertionError("unreachable: DossierError is last in STATUS")


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return _body("invalid_input", "; ".join(parts) or "Invalid request.", 422)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _body("http_error", str(exc.detail), exc.status_code)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Logged with its traceback for us; the caller gets no stack trace.
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return _body("internal_error", "Internal error; the server log has the details.", 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.DossierError, _dossier_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
