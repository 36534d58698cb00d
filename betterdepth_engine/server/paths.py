"""Which local files a client may name: only files inside the folders the server was told to allow."""

from __future__ import annotations

import os
from pathlib import Path

from betterdepth_engine.server.errors import ServiceError


def _not_allowed(path: str, why: str) -> ServiceError:
    return ServiceError(
        "PATH_NOT_ALLOWED", f"The engine may not read '{path}': {why}.",
        "Upload the file instead, or start the engine with --allow-dir for the folder that holds it.",
    )


def resolve_allowed_file(path: str, allow_dirs: tuple[Path, ...]) -> Path:
    """The real path of `path` if it is an existing file inside an allowed folder (after following symlinks)."""
    if not os.path.isabs(path):
        raise _not_allowed(path, "only absolute paths are accepted")
    if ".." in Path(path).parts:
        raise _not_allowed(path, "paths with '..' are refused")
    if not allow_dirs:
        raise _not_allowed(path, "no folder is allowed (the engine was started without --allow-dir)")
    real = Path(os.path.realpath(path))
    if not any(real.is_relative_to(folder) for folder in allow_dirs):
        raise _not_allowed(path, "it lies outside the allowed folders (symlinks are followed)")
    if not real.is_file():
        raise ServiceError("BAD_IMAGE", f"Image '{path}' does not exist or is not a file.", "Check the path.")
    return real
