"""POST /v1/models/unload: drop every loaded model and give its memory back (CUDA cache emptied)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from betterdepth_engine.server.app import Service, service
from betterdepth_engine.server.errors import ServiceError
from betterdepth_engine.server.schemas import Unloaded

router = APIRouter(tags=["models"])
WAIT_FOR_RUNNING_JOB_S = 60.0


@router.post("/models/unload", response_model=Unloaded)
def unload(engine: Service = Depends(service)) -> Unloaded:
    # The running job holds the models: wait for it to finish (a bounded time) rather than pull them away.
    if not engine.models.lock.acquire(timeout=WAIT_FOR_RUNNING_JOB_S):
        raise ServiceError("CONFLICT", "A job is still using the models.", "Unload again when it has finished.")
    try:
        return Unloaded(**{key: value for key, value in engine.models.unload().items() if key != "at"})
    finally:
        engine.models.lock.release()
