"""POST /v1/uploads: the raw bytes of an image (or a base prediction), streamed to the state folder."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path

from fastapi import APIRouter, Depends, Header, Request
from starlette.requests import ClientDisconnect

from betterdepth_engine.server.app import Service, service
from betterdepth_engine.server.errors import ServiceError
from betterdepth_engine.server.schemas import Upload

router = APIRouter(tags=["uploads"])
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
# What an upload may be: images, and depth files for base predictions. The suffix is kept: readers need it.
SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".npy", ".exr"}


def upload_path(uploads_dir: Path, upload_id: str) -> Path:
    """The stored file of an upload id, or NOT_FOUND."""
    if UPLOAD_ID.match(upload_id):
        for path in uploads_dir.glob(f"{upload_id}.*"):
            if not path.name.startswith("."):
                return path
    raise ServiceError("NOT_FOUND", f"No upload '{upload_id}'.", "Upload the file first (POST /v1/uploads); "
                       "uploads are deleted after the engine's retention time.")


@router.post(
    "/uploads", response_model=Upload, status_code=201,
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {
        "type": "string", "format": "binary"}}}}},
)
async def upload(request: Request, x_filename: str = Header(description="the file's name, for its type"),
                 engine: Service = Depends(service)) -> Upload:
    suffix = Path(x_filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise ServiceError("BAD_PARAMS", f"Cannot take a '{suffix or x_filename}' file.",
                           f"Upload one of: {', '.join(sorted(SUFFIXES))}.")
    limit = engine.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    upload_id = uuid.uuid4().hex
    destination = engine.settings.uploads_dir / f"{upload_id}{suffix}"
    staging = destination.with_name(f".{destination.name}.partial")
    digest, size = hashlib.sha256(), 0
    try:
        with open(staging, "wb") as file:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                digest.update(chunk)
                file.write(chunk)
        if size == 0:
            raise ServiceError("BAD_IMAGE", "The upload is empty.", "Send the file's bytes as the request body.")
        os.replace(staging, destination)
    except ClientDisconnect:
        raise ServiceError("BAD_PARAMS", "The client disconnected during the upload.", "Upload again.") from None
    finally:
        staging.unlink(missing_ok=True)
    return Upload(upload_id=upload_id, size=size, sha256=digest.hexdigest())


def _too_large(limit: int) -> ServiceError:
    return ServiceError("PAYLOAD_TOO_LARGE", f"The upload is larger than the engine's limit ({limit // 2**20} MB).",
                        "Send a smaller file, or start the engine with a larger --max-upload-mb.")
