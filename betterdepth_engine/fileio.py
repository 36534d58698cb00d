"""Atomic output writing: every file appears whole or not at all.

Writers produce into a temporary file in the destination folder, then `os.replace` it into place,
so a crash or a bad input never leaves a half-written result behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from betterdepth_engine.errors import BetterDepthError


def _staging_path(destination: Path) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    # Keep the real suffix last: writers (Pillow, Open3D, OpenEXR) pick the format from it.
    fd, temp_name = tempfile.mkstemp(
        prefix=f".{destination.stem}.", suffix=f".partial{destination.suffix}", dir=destination.parent
    )
    os.close(fd)
    # mkstemp creates 0600 files; results should get the usual permissions (0666 minus the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp_name, 0o666 & ~umask)
    return Path(temp_name)


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `destination`; move it into place only if the block succeeds."""
    destination = Path(destination)
    temp_path = _staging_path(destination)
    try:
        yield temp_path
        os.replace(temp_path, destination)
    finally:
        temp_path.unlink(missing_ok=True)


def check_output_folder(folder: str | os.PathLike) -> None:
    """Refuse an output folder that cannot be created or written, before any work is done. Creates nothing."""
    folder = Path(folder)
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir():
        what = "is a file" if existing == folder else f"is under '{existing}', which is a file"
        raise BetterDepthError(BetterDepthError.OUTPUT_ERROR, f"The output folder '{folder}' {what}.",
                               "Pass a folder path (new or existing) as the output.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BetterDepthError(BetterDepthError.OUTPUT_ERROR, f"Cannot write to '{existing}' (permission denied).",
                               "Pass an output folder you can write to.")


def write_files_atomically(writers: Mapping[str | os.PathLike, Callable[[Path], None]]) -> list[Path]:
    """Write a set of files so that either all of them appear or none does.

    `writers` maps each destination to a function that writes the content to the path it is given.
    Everything is written to temporary paths first and renamed only when every writer succeeded.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for destination, write in writers.items():
            destination = Path(destination)
            staged.append((_staging_path(destination), destination))
            write(staged[-1][0])
    except BaseException as error:
        for temp_path, _ in staged:
            temp_path.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise BetterDepthError(
                BetterDepthError.OUTPUT_ERROR,
                f"Could not write the output files: {error}",
                "Check that the output folder is writable and the disk has room.",
            ) from error
        raise
    for temp_path, destination in staged:
        os.replace(temp_path, destination)
    return [destination for _, destination in staged]
