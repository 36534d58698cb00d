"""POST /v1/shutdown: stop the engine (the running job is cancelled, queued ones too)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from betterdepth_engine.server.app import Service, service
from betterdepth_engine.server.schemas import Ok

router = APIRouter(tags=["shutdown"])


@router.post("/shutdown", response_model=Ok)
def shutdown(engine: Service = Depends(service)) -> Ok:
    engine.request_shutdown()
    return Ok()
