"""Models loaded once and kept by name, until unloaded on request or after an idle time.

Unloading drops every reference, collects garbage, empties the CUDA cache and asks the C allocator to give
freed pages back to the system, so the memory shows up as free to other programs (Blender's Cycles, above all).
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import logging
import os
import threading
import time
from pathlib import Path

import psutil

log = logging.getLogger("betterdepth.server")


def memory_snapshot(device) -> dict:
    """Resident memory of this process, and the CUDA allocator's numbers on a GPU."""
    snapshot = {"rss_bytes": psutil.Process(os.getpid()).memory_info().rss}
    if device is not None and device.type == "cuda":
        import torch

        free, total = torch.cuda.mem_get_info(device)
        snapshot.update(
            cuda_allocated_bytes=torch.cuda.memory_allocated(device),
            cuda_reserved_bytes=torch.cuda.memory_reserved(device),
            cuda_free_bytes=free, cuda_total_bytes=total,
        )
    return snapshot


def _release_freed_memory(device) -> None:
    gc.collect()
    if device is not None and device.type == "cuda":
        import torch

        torch.cuda.empty_cache()
    try:  # glibc keeps freed heap pages mapped; malloc_trim returns them (no-op elsewhere)
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def folder_fingerprint(folder: Path) -> str:
    """SHA-256 over a model folder's files (relative names and bytes, in name order): which weights ran."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with open(path, "rb") as file:
            while chunk := file.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def model_folder(kind: str, spec: str) -> Path | None:
    """The folder a model name loads from, if it is on this machine (shipped, a folder, or in the hub cache)."""
    from betterdepth_engine.models.loading import BASE_ALIASES, DEFAULT_WEIGHTS, REFINER_ALIASES

    if spec == "default":
        return DEFAULT_WEIGHTS / kind
    source = (BASE_ALIASES if kind == "base" else REFINER_ALIASES).get(spec, spec)
    if Path(source).is_dir():
        return Path(source)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception:  # noqa: BLE001 - not a hub id, or not cached: no fingerprint
        return None


class ModelCache:
    """Base models and refiners by the name the client gave; one lock, held by whoever uses them."""

    def __init__(self, device: str = "auto", dtype: str = "auto"):
        self.requested_device, self.requested_dtype = device, dtype
        self.device = None  # resolved on first use (torch is imported then)
        self.dtype = None
        self.lock = threading.RLock()
        self._models: dict[tuple[str, str], object] = {}  # (kind, name) -> loaded model
        self._fingerprints: dict[tuple[str, str], dict] = {}  # kept across unloads: the files do not change
        self.last_used = time.monotonic()
        self.last_unload: dict | None = None

    def resolve_device(self):
        if self.device is None:
            from betterdepth_engine.commands.estimate import resolve_device

            self.device, self.dtype = resolve_device(self.requested_device, self.requested_dtype)
        return self.device

    def base(self, spec: str):
        from betterdepth_engine.models.loading import load_base_model

        return self._get("base", spec, load_base_model)

    def refiner(self, spec: str):
        from betterdepth_engine.models.loading import load_refiner

        return self._get("refiner", spec, load_refiner)

    def _get(self, kind: str, spec: str, load):
        """The model loaded once under (kind, spec)."""
        if (kind, spec) not in self._models:
            log.info("loading %s %s", kind, spec)
            self._models[kind, spec] = load(spec, self.resolve_device(), self.dtype)
        self.last_used = time.monotonic()
        return self._models[kind, spec]

    def fingerprint(self, kind: str, spec: str) -> dict:
        """{"name", "folder", "sha256"} of a model's files (hashed once per engine; None where unknown)."""
        if (kind, spec) not in self._fingerprints:
            folder = model_folder(kind, spec) if spec != "none" else None
            self._fingerprints[kind, spec] = {
                "name": spec, "folder": str(folder) if folder else None,
                "sha256": folder_fingerprint(folder) if folder else None,
            }
        return self._fingerprints[kind, spec]

    def loaded(self) -> list[dict]:
        return [{"kind": kind, "name": name} for kind, name in self._models]

    def unload(self) -> dict:
        """Drop every model; returns what was unloaded and the memory before and after."""
        with self.lock:
            unloaded = self.loaded()
            before = memory_snapshot(self.device)
            self._models.clear()
            _release_freed_memory(self.device)
            after = memory_snapshot(self.device)
        self.last_unload = {"unloaded": unloaded, "memory_before": before, "memory_after": after, "at": time.time()}
        log.info("unloaded %d model(s): RSS %.0f -> %.0f MB", len(unloaded), before["rss_bytes"] / 2**20,
                 after["rss_bytes"] / 2**20)
        return self.last_unload
