"""GET /v1/health: versions, device, memory, loaded models, queue."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from betterdepth_engine import __version__
from betterdepth_engine.images import MAX_SIDE
from betterdepth_engine.server.app import Service, service
from betterdepth_engine.server.models import memory_snapshot
from betterdepth_engine.server.schemas import Health
from betterdepth_engine.server.settings import PROTOCOL_VERSION

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(engine: Service = Depends(service)) -> Health:
    models = engine.models
    return Health(
        engine_version=__version__, protocol=PROTOCOL_VERSION, device=str(models.resolve_device()),
        memory=memory_snapshot(models.device), loaded_models=models.loaded(),
        queue_length=engine.runner.queue_length(), running_job=engine.runner.running_job,
        limits={"max_upload_bytes": engine.settings.max_upload_bytes, "max_image_side": MAX_SIDE},
        last_unload=models.last_unload,
    )
