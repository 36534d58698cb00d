"""The service's error answers: every non-2xx response is JSON {"code", "message", "hint"} with a stable code.

The engine's own codes (BetterDepthError) pass through unchanged; the service adds its own.
"""

from __future__ import annotations

from betterdepth_engine.errors import BetterDepthError

# Service codes on top of the engine's, and the HTTP status each answers with.
HTTP_STATUS = {
    "UNAUTHORIZED": 401,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "BAD_PARAMS": 422,
    "QUEUE_FULL": 429,
    "PATH_NOT_ALLOWED": 403,
    "ENGINE_RESTARTED": 409,
    "INTERNAL": 500,
    # The engine's codes, when raised while handling a request (a job's failure is reported in its status).
    BetterDepthError.BAD_IMAGE: 400,
    BetterDepthError.BAD_INPUT: 422,
    BetterDepthError.BAD_DEPTH: 400,
    BetterDepthError.MODEL_NOT_FOUND: 404,
    BetterDepthError.BAD_MODEL: 400,
    BetterDepthError.OUT_OF_MEMORY: 507,
    BetterDepthError.CANCELLED: 409,
    BetterDepthError.OUTPUT_ERROR: 500,
}


class ServiceError(BetterDepthError):
    """A BetterDepthError with the service's codes allowed; answered as JSON with HTTP_STATUS[code]."""

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 400)


def as_service_error(error: BetterDepthError) -> ServiceError:
    return ServiceError(error.code, error.message, error.hint)
