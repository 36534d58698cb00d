"""The FastAPI application: one router per resource under /v1, bearer-token auth, JSON errors with stable codes."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from betterdepth_engine import __version__
from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.server.errors import ServiceError, as_service_error
from betterdepth_engine.server.models import ModelCache
from betterdepth_engine.server.runner import JobRunner
from betterdepth_engine.server.settings import PROTOCOL_VERSION, ServerSettings
from betterdepth_engine.server.store import JobStore

log = logging.getLogger("betterdepth.server")


@dataclass
class Service:
    """Everything a request handler may use (FastAPI dependency `service`)."""

    settings: ServerSettings
    store: JobStore
    models: ModelCache
    runner: JobRunner
    request_shutdown: Callable[[], None]


def service(request: Request) -> Service:
    return request.app.state.service


class TokenAuth:
    """Every request, to any path, carries `Authorization: Bearer <token>` (compared in constant time).

    A middleware rather than a route dependency, so that unknown paths and the schema answer 401 too.
    """

    def __init__(self, app, token: str | None):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.token is not None:
            scheme, _, given = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), self.token.encode()):
                error = ServiceError("UNAUTHORIZED", "Missing or wrong engine token.",
                                     "Send 'Authorization: Bearer <token>' with the token from the engine's "
                                     "--token-file.")
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def error_response(error: ServiceError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.code == "UNAUTHORIZED" else None
    return JSONResponse(error.to_dict(), status_code=error.http_status, headers=headers)


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for problem in error.errors()[:5]:
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
        parts.append(f"{where or 'body'}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BetterDepthError)
    async def engine_error(_request, error: BetterDepthError):
        return error_response(error if isinstance(error, ServiceError) else as_service_error(error))

    @app.exception_handler(RequestValidationError)
    async def bad_params(_request, error: RequestValidationError):
        return error_response(ServiceError("BAD_PARAMS", f"Invalid request: {_validation_message(error)}.",
                                           "See the protocol's schema at /v1/openapi.json."))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, error: StarletteHTTPException):
        codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}
        code = codes.get(error.status_code, "BAD_PARAMS")
        return JSONResponse({"code": code, "message": str(error.detail), "hint": ""}, status_code=error.status_code)

    @app.exception_handler(Exception)
    async def internal_error(_request, error: Exception):
        log.exception("unexpected error while answering a request")
        return JSONResponse({"code": "INTERNAL", "message": f"{type(error).__name__}: {error}",
                             "hint": "See the engine log; please report it."}, status_code=500)


class LimitJsonBodies:
    """Refuse request bodies above the JSON limit before they are read (uploads have their own, larger limit)."""

    def __init__(self, app, max_json_bytes: int):
        self.app, self.max_json_bytes = app, max_json_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] != "/v1/uploads":
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_json_bytes:
                response = JSONResponse({"code": "PAYLOAD_TOO_LARGE", "message": "The request body is too large.",
                                         "hint": "Upload images with POST /v1/uploads."}, status_code=413)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(settings: ServerSettings, request_shutdown: Callable[[], None] = lambda: None) -> FastAPI:
    """The app with its state folder opened and the worker started (stop it with `app.state.service.runner.stop()`)."""
    from betterdepth_engine.server.routers import health, jobs, models, shutdown, uploads

    settings.jobs_dir.mkdir(parents=True, exist_ok=True)
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(settings.state_dir / "jobs.sqlite3")
    model_cache = ModelCache(settings.device, settings.dtype)
    runner = JobRunner(settings, store, model_cache)
    app = FastAPI(
        title="BetterDepth engine", version=__version__,
        summary=f"BetterDepth engine service, protocol {PROTOCOL_VERSION}",
        openapi_url="/v1/openapi.json", docs_url=None, redoc_url=None,
    )
    app.state.service = Service(settings, store, model_cache, runner, request_shutdown)
    install_error_handlers(app)
    for router in (health.router, uploads.router, jobs.router, models.router, shutdown.router):
        app.include_router(router, prefix="/v1")
    app.add_middleware(LimitJsonBodies, max_json_bytes=settings.max_json_bytes)
    app.add_middleware(TokenAuth, token=settings.token)  # added last: runs first
    _declare_bearer_auth(app)
    runner.start()
    return app


def _declare_bearer_auth(app: FastAPI) -> None:
    """Say in the schema that every operation needs the bearer token (enforced by TokenAuth)."""

    def schema() -> dict:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            document.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            document["security"] = [{"bearer": []}]
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = schema
