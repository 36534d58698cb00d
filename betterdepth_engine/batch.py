"""`betterdepth batch`: the estimate command's per-image work mapped over many images, on Ray or in process.

Each image is the same pure step as in `betterdepth estimate` (image path + settings -> output files, written
atomically by `commands.estimate.estimate_group`), so the files are the same bytes whichever way it runs:
- Ray Data: a dataset of paths, `map_batches` with `EstimateActor` (models loaded once per actor), an actor
  pool of `--workers`; Ray restarts an actor that dies and retries its batch (its defaults for actor pools).
- in process (`--workers 0`): the same actor class called in a plain loop, for debugging.
The driver writes `OUT/_batch/manifest.jsonl` as results arrive (one line per image), so a crash loses at most
the images in flight, and a rerun skips images whose outputs are complete.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.images import IMAGE_SUFFIXES

MANIFEST = Path("_batch") / "manifest.jsonl"
# Test-only fault injection: an actor exits hard (os._exit) the first time it meets the image with this name.
CRASH_ONCE_ENV = "BETTERDEPTH_TEST_CRASH_ONCE"


def collect_inputs(inputs: list[str | os.PathLike]) -> list[Path]:
    """Files, folders (recursively: every image below them) and .txt files listing one path per line."""
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise BetterDepthError(BetterDepthError.BAD_INPUT, f"Folder '{item}' holds no images.",
                                       f"Accepted extensions: {', '.join(sorted(IMAGE_SUFFIXES))}.")
            paths.extend(found)
        elif item.suffix.lower() == ".txt" and item.is_file():
            lines = [line.strip() for line in item.read_text().splitlines()]
            # Relative entries are relative to the list's folder, so a list travels with its images.
            paths.extend((item.parent / line) for line in lines if line and not line.startswith("#"))
        else:
            paths.append(item)
    return [Path(os.path.abspath(path)) for path in paths]


def expected_outputs(out_dir: Path, stem: str, settings: dict) -> list[Path]:
    """The files a finished image has (as `betterdepth estimate` writes them with these settings)."""
    from betterdepth_engine.commands.estimate import FORMAT_SUFFIXES
    from betterdepth_engine.recon.export import output_paths

    names = [f"{stem}_disparity.npy", f"{stem}_base_disparity.npy", f"{stem}_meta.json"]
    if (settings["options"].ensemble_size or 1) > 1:
        names.append(f"{stem}_uncertainty.npy")
    names += [f"{stem}{FORMAT_SUFFIXES[fmt]}" for fmt in settings["formats"]]
    paths = [out_dir / name for name in names]
    if settings["mesh_formats"]:
        mesh_paths = output_paths(out_dir, stem, "mesh")
        paths += [mesh_paths[fmt] for fmt in settings["mesh_formats"]] + [mesh_paths["json"]]
    return paths


def is_complete(out_dir: Path, path: Path, settings: dict) -> bool:
    return all(output.is_file() for output in expected_outputs(out_dir, path.stem, settings))


class EstimateActor:
    """Builds the pipeline once; each call estimates a batch of image paths and returns one status row each."""

    def __init__(self, settings: dict):
        from betterdepth_engine.commands.estimate import build_pipeline

        self.settings = settings
        self.pipeline = build_pipeline(settings)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict) -> dict:
        from betterdepth_engine.commands.estimate import estimate_group

        paths = [Path(str(path)) for path in batch["path"]]
        self._maybe_crash(paths)
        settings = self.settings
        start = time.perf_counter()
        errors = estimate_group(self.pipeline, paths, settings["options"], Path(settings["output"]),
                                settings["formats"], settings["mesh_formats"], settings["far_near_ratio"])
        seconds = (time.perf_counter() - start) / max(1, len(paths))
        rows = {"path": [], "status": [], "code": [], "message": [], "seconds": [], "worker": []}
        for path in paths:
            error = errors.get(path)
            rows["path"].append(str(path))
            rows["status"].append("failed" if error else "ok")
            rows["code"].append(_code(error) if error else "")
            rows["message"].append(str(error) if error else "")
            rows["seconds"].append(round(seconds, 4))
            rows["worker"].append(self.worker)
        return rows

    def _maybe_crash(self, paths: list[Path]) -> None:
        name = os.environ.get(CRASH_ONCE_ENV)
        if name and any(path.name == name for path in paths):
            marker = Path(self.settings["output"]) / "_batch" / f".crashed-{name}"
            if not marker.exists():
                marker.touch()
                os._exit(1)


def _code(error: Exception) -> str:
    return error.code if isinstance(error, BetterDepthError) else type(error).__name__


def run_in_process(paths: list[Path], settings: dict) -> Iterator[dict]:
    actor = EstimateActor(settings)
    batch_size = settings["batch_size"]
    for first in range(0, len(paths), batch_size):
        rows = actor({"path": [str(path) for path in paths[first:first + batch_size]]})
        yield from (dict(zip(rows, values)) for values in zip(*rows.values()))


def connect_ray(address: str | None):
    """Join the cluster at `address` ('auto', 'ray://host:10001', 'host:6379'), or start a local runtime."""
    import ray

    if address not in (None, "auto", "local"):
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
        except (OSError, ValueError):
            raise BetterDepthError(
                BetterDepthError.BAD_INPUT, f"Cannot reach a Ray cluster at '{address}'.",
                "Start the head node (`ray start --head`) and pass its address (ray://HOST:10001 or HOST:6379), "
                "or leave --ray-address out to run on this machine.") from None
    if ray.is_initialized():  # e.g. a test session's shared runtime
        return ray
    try:
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR", configure_logging=True,
                 **({"num_cpus": os.cpu_count()} if address is None else {}))
    except ConnectionError as error:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, f"Cannot join the Ray cluster '{address}': {error}",
                               "Check that `ray status` works on this machine, or leave --ray-address out.") from None
    return ray


def run_on_ray(paths: list[Path], settings: dict, workers: int, gpus_per_worker: float) -> Iterator[dict]:
    """Status rows of the images as Ray Data finishes them (Ray already joined or started: `connect_ray`)."""
    import logging

    import ray
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # the command shows one bar of finished images
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    # Each actor gets an equal share of the CPUs (torch's threads follow it), or its GPUs.
    cpus = max(1.0, float(ray.cluster_resources().get("CPU", 1)) // workers)
    env_vars = {"OMP_NUM_THREADS": str(int(cpus))} if not gpus_per_worker else {}
    if os.environ.get(CRASH_ONCE_ENV):
        env_vars[CRASH_ONCE_ENV] = os.environ[CRASH_ONCE_ENV]
    dataset = ray.data.from_items([{"path": str(path)} for path in paths], override_num_blocks=len(paths))
    results = dataset.map_batches(
        EstimateActor, fn_constructor_args=(settings,), batch_size=settings["batch_size"], concurrency=workers,
        num_gpus=gpus_per_worker, num_cpus=1 if gpus_per_worker else cpus,
        runtime_env={"env_vars": env_vars} if env_vars else None,
    )
    yield from results.iter_rows()


def open_manifest(out_dir: Path):
    """A fresh manifest for this run; the previous run's is kept beside it under its start time."""
    path = out_dir / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.rename(path.with_name(f"manifest-{int(path.stat().st_mtime)}.jsonl"))
    return open(path, "a", buffering=1)  # line-buffered: each image is on disk as soon as it is known


def write_manifest_line(manifest, row: dict) -> None:
    manifest.write(json.dumps(row) + "\n")
    manifest.flush()
    os.fsync(manifest.fileno())


def print_summary(counts: dict, seconds: float) -> None:
    done = counts["ok"] + counts["failed"]
    rate = done / seconds if seconds > 0 else 0.0
    print(f"betterdepth batch: {counts['ok']} done, {counts['failed']} failed, {counts['skipped']} skipped "
          f"(already complete) in {seconds:.1f} s: {rate:.2f} images/s", file=sys.stderr)
