"""Jobs: submit, list, status, progress events (SSE), cancel, results, delete."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, StreamingResponse

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.server.app import Service, service
from betterdepth_engine.server.errors import ServiceError
from betterdepth_engine.server.paths import resolve_allowed_file
from betterdepth_engine.server.routers.uploads import upload_path
from betterdepth_engine.server.runner import link_or_copy
from betterdepth_engine.server.schemas import JobList, JobRequest, JobStatus, Submitted
from betterdepth_engine.server.store import FINAL_STATES

router = APIRouter(tags=["jobs"])
KEEPALIVE_S = 15.0  # a comment line this often on a quiet stream (and a check that the client is still there)


def job_status(engine: Service, job_id: str) -> JobStatus:
    record = engine.store.get(job_id)
    if record is None:
        raise ServiceError("NOT_FOUND", f"No job '{job_id}'.",
                           "Check the id; finished jobs are deleted after the engine's retention time.")
    progress = engine.runner.progress(job_id)
    running = record.state == "running"
    return JobStatus(
        job_id=record.id, task=record.task, state=record.state,
        stage=progress.stage if running else record.stage,
        step=progress.step if running else None, total_steps=progress.total_steps if running else None,
        fraction=1.0 if record.state == "succeeded" else progress.fraction,
        eta_s=progress.eta_s if running else None,
        queue_position=engine.runner.queue_position(job_id) if record.state == "queued" else None,
        message=progress.message if not record.error else record.error["message"],
        error=record.error, results=engine.runner.results(job_id),
        created_at=record.created_at, started_at=record.started_at, finished_at=record.finished_at,
    )


def _checked_inputs(engine: Service, request: JobRequest):
    """Validate what the job refers to now, so a bad submission fails at once; returns `take_inputs(dir)`."""
    settings = engine.settings
    links: list[tuple[Path, str]] = []  # (source file, name in the job's input folder)
    if request.reuse_disparity is not None:
        links.append(_checked_disparity(engine, request))
    if request.reuse_job is not None:
        if request.image is not None:
            raise ServiceError("BAD_PARAMS", "Give either an image or reuse_job, not both.",
                               "reuse_job re-uses that job's image and depth.")
        source = engine.store.get(request.reuse_job)
        if source is None or source.state != "succeeded":
            raise ServiceError("NOT_FOUND", f"No succeeded job '{request.reuse_job}' to reuse.",
                               "reuse_job must name a job whose state is 'succeeded' and not yet deleted.")
        if request.estimate.base_prediction is not None:
            raise ServiceError("BAD_PARAMS", "A reused job brings its own depth; base_prediction is not used.",
                               "Leave estimate.base_prediction out.")
    elif request.image is not None or request.reuse_disparity is None:  # a kept disparity needs no image
        image = request.image
        if image is None or (image.path is None) == (image.upload_id is None):
            raise ServiceError("BAD_PARAMS", "A job needs exactly one image source: image.path or image.upload_id.",
                               "Or reuse an earlier job's depth with reuse_job.")
        if image.path is not None:
            _check_image_header(resolve_allowed_file(image.path, settings.allow_dirs))
        else:
            path = upload_path(settings.uploads_dir, image.upload_id)
            _check_image_header(path)
            links.append((path, f"image{path.suffix}"))
    if request.estimate.base_prediction is not None:
        path = upload_path(settings.uploads_dir, request.estimate.base_prediction.upload_id)
        links.append((path, f"base_prediction{path.suffix}"))
    _check_options(request)

    def take_inputs(input_dir: Path) -> None:
        for source_path, name in links:
            link_or_copy(source_path, input_dir / name)

    return take_inputs


def _checked_disparity(engine: Service, request: JobRequest) -> tuple[Path, str]:
    """A kept disparity (reuse_disparity): decoded now, so a damaged file fails at submission with BAD_DEPTH."""
    from betterdepth_engine.depthfile import decode_depth

    if request.task == "estimate":
        raise ServiceError("BAD_PARAMS", "reuse_disparity is for mesh and relief jobs: an estimate of a known "
                           "disparity has nothing to compute.", "Submit task 'mesh' or 'relief'.")
    if request.reuse_job is not None or request.estimate.base_prediction is not None:
        raise ServiceError("BAD_PARAMS", "reuse_disparity brings the job's depth; reuse_job and "
                           "estimate.base_prediction cannot be given with it.", "Give only one source of depth.")
    path = upload_path(engine.settings.uploads_dir, request.reuse_disparity.upload_id)
    disparity = decode_depth(path, path.suffix.lower(), "the kept disparity")
    if not np.isfinite(disparity).any():
        raise ServiceError("BAD_DEPTH", "The kept disparity has no valid pixel.",
                           "Upload the disparity.npy of the job the object was made from.")
    return path, f"reuse_disparity{path.suffix.lower()}"


def _check_image_header(path: Path) -> None:
    """Open the image's header only (no decoding): not an image or too large fails at submission."""
    from PIL import Image, UnidentifiedImageError

    from betterdepth_engine.images import MAX_SIDE

    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ServiceError("BAD_IMAGE", f"'{path.name}' is not an image the engine can read.",
                           "Send a JPEG, PNG, TIFF, BMP or WebP file.") from None
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ServiceError("BAD_IMAGE",
                           f"'{path.name}' is {width}x{height}; the largest side accepted is {MAX_SIDE} px.",
                           "Downscale the image first.")


def _check_options(request: JobRequest) -> None:
    """Run the engine's own checks on the settings now (they raise BAD_INPUT): answered as BAD_PARAMS."""
    from betterdepth_engine.pipeline import RefineOptions
    from betterdepth_engine.server.tasks import recon_options

    params = request.estimate
    try:
        RefineOptions(denoising_steps=params.steps, ensemble_size=params.ensemble_size,
                      processing_resolution=params.processing_resolution, strength=params.strength,
                      ensemble_reduction=params.ensemble_reduction, seed=params.seed, noise=params.noise,
                      guard=params.guard)
        if request.task != "estimate":
            recon_options(request.model_dump(), None)
    except BetterDepthError as error:
        raise ServiceError("BAD_PARAMS", error.message, error.hint) from None


@router.post("/jobs", response_model=Submitted, status_code=202)
def submit(request: JobRequest, engine: Service = Depends(service)) -> Submitted:
    take_inputs = _checked_inputs(engine, request)
    payload = request.model_dump()
    if request.image is not None and request.image.path is not None:
        payload["image"]["path"] = str(resolve_allowed_file(request.image.path, engine.settings.allow_dirs))
    record, existing = engine.runner.submit(payload, take_inputs)
    return Submitted(job_id=record.id, state=engine.store.get(record.id).state, existing=existing,
                     queue_position=engine.runner.queue_position(record.id))


@router.get("/jobs", response_model=JobList)
def list_jobs(engine: Service = Depends(service)) -> JobList:
    return JobList(jobs=[job_status(engine, record.id) for record in engine.store.all()])


@router.get("/jobs/{job_id}", response_model=JobStatus)
def status(job_id: str, engine: Service = Depends(service)) -> JobStatus:
    return job_status(engine, job_id)


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "one `data:` JobStatus per change"}})
async def events(job_id: str, request: Request, engine: Service = Depends(service)) -> StreamingResponse:
    """Server-Sent Events: the job's status each time it changes, until it reaches a final state."""
    job_status(engine, job_id)  # NOT_FOUND before the stream starts, not inside it

    async def stream():
        current = job_status(engine, job_id)
        if current.state in FINAL_STATES:  # also jobs finished before an engine restart: no live progress for them
            yield f"data: {current.model_dump_json()}\n\n"
            return
        loop, changed = asyncio.get_running_loop(), asyncio.Event()

        def wake() -> None:  # called on the worker's thread
            loop.call_soon_threadsafe(changed.set)

        engine.runner.listen(job_id, wake)
        try:
            index = 0
            while True:
                changed.clear()
                changes, index = engine.runner.changes_since(job_id, index)
                if changes:
                    try:
                        current = job_status(engine, job_id)
                    except ServiceError:  # deleted while streaming
                        return
                    for change in changes:
                        if change["state"] in FINAL_STATES:  # the last event is the job's full final status
                            yield f"data: {current.model_dump_json()}\n\n"
                            return
                        yield f"data: {current.model_copy(update=change).model_dump_json()}\n\n"
                try:
                    await asyncio.wait_for(changed.wait(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
        finally:
            engine.runner.unlisten(job_id, wake)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.post("/jobs/{job_id}/cancel", response_model=JobStatus)
def cancel(job_id: str, engine: Service = Depends(service)) -> JobStatus:
    job_status(engine, job_id)
    engine.runner.cancel(job_id)
    return job_status(engine, job_id)


@router.get("/jobs/{job_id}/results/{name}", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}}})
def result_file(job_id: str, name: str, engine: Service = Depends(service)) -> FileResponse:
    current = job_status(engine, job_id)
    if name not in current.results:  # only names the job listed: nothing else under the state folder
        raise ServiceError("NOT_FOUND", f"Job '{job_id}' has no result '{name}'.",
                           f"Available now: {', '.join(current.results) or 'none'} (state {current.state}).")
    response = FileResponse(engine.runner.job_dir(job_id) / "results" / name, filename=name)
    response.chunk_size = 1 << 20  # Starlette's 64 KB chunks: a 4 MB download took 12-16 ms on loopback, now ~9
    return response


@router.delete("/jobs/{job_id}", response_model=JobStatus)
def delete(job_id: str, engine: Service = Depends(service)) -> JobStatus:
    """Cancel the job if needed and delete it with its results; answers its last status."""
    last = job_status(engine, job_id)
    engine.runner.delete(job_id)
    return last

