"""Engine service benchmark: what a job costs through `betterdepth serve` over the in-process pipeline.

    python scripts/bench_server.py [--repeats 10] [--megapixels 1.0]

1. Round trip for one ~1-megapixel photo with the shipped models: in process (load image, pipeline, save the
   disparity) against the service (submit by path, follow the event stream, download disparity.npy), run
   alternately; the medians and their difference (the service's overhead; target under 30 ms).
2. Throughput with 1, 4 and 20 clients submitting at once (one model worker: the queue keeps it busy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from betterdepth_engine.client import launch_managed_engine  # noqa: E402


def in_process_round_trip(pipeline, path: Path, out_dir: Path) -> float:
    from betterdepth_engine.images import load_image
    from betterdepth_engine.pipeline import RefineOptions

    start = time.perf_counter()
    result = pipeline(load_image(path), RefineOptions())
    np.save(out_dir / "disparity.npy", result.disparity)
    return time.perf_counter() - start


def service_round_trip(client, path: Path, out_dir: Path) -> float:
    start = time.perf_counter()
    job = client.submit("estimate", image_path=path)
    client.wait(job["job_id"])
    client.download(job["job_id"], "disparity.npy", out_dir / "served.npy")
    return time.perf_counter() - start


def throughput(engine, paths: list[Path], clients: int, jobs_per_client: int) -> float:
    def one_client(index: int) -> None:
        client = engine.client(timeout=300)
        for k in range(jobs_per_client):
            job = client.submit("estimate", image_path=paths[(index + k) % len(paths)])
            client.wait(job["job_id"])

    threads = [threading.Thread(target=one_client, args=(index,)) for index in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return clients * jobs_per_client / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--megapixels", type=float, default=1.0)
    parser.add_argument("--jobs", type=int, default=40, help="jobs per throughput run, split over the clients")
    args = parser.parse_args()

    import torch

    from betterdepth_engine.models.loading import load_base_model, load_refiner
    from betterdepth_engine.pipeline import BetterDepthPipeline

    work = Path(tempfile.mkdtemp(prefix="bench_server_"))
    photo = Image.open(ROOT / "samples" / "coffee.jpg").convert("RGB")
    scale = (args.megapixels * 1e6 / (photo.width * photo.height)) ** 0.5
    size = (round(photo.width * scale), round(photo.height * scale))
    path = work / "photo.png"
    photo.resize(size, Image.Resampling.LANCZOS).save(path)
    small_paths = []
    for index in range(4):
        small = work / f"small{index}.png"
        photo.resize((384, 256)).rotate(index * 90, expand=True).save(small)
        small_paths.append(small)

    pipeline = BetterDepthPipeline(load_base_model("default"), load_refiner("default"))
    engine = launch_managed_engine(sys.executable, work / "state", allow_dirs=[work])
    try:
        client = engine.client(timeout=300)
        for _ in range(2):  # warm both: models loaded, caches filled
            in_process_round_trip(pipeline, path, work)
            service_round_trip(client, path, work)
        local, served = [], []
        for _ in range(args.repeats):
            local.append(in_process_round_trip(pipeline, path, work))
            served.append(service_round_trip(client, path, work))
        local_ms, served_ms = statistics.median(local) * 1000, statistics.median(served) * 1000
        print(f"machine: {torch.get_num_threads()} torch threads, {engine.device}; image {size[0]}x{size[1]}; "
              f"shipped models at their defaults; medians of {args.repeats}")
        print()
        print("| path | round trip (ms) |")
        print("|---|---|")
        print(f"| in process (load, pipeline, save) | {local_ms:.1f} |")
        print(f"| service (submit by path, events, download) | {served_ms:.1f} |")
        print(f"| **overhead** | **{served_ms - local_ms:+.1f}** |")
        print()
        print("| clients | jobs | images/s (384x256) |")
        print("|---|---|---|")
        for clients in (1, 4, 20):
            jobs_per_client = max(1, args.jobs // clients)
            rate = throughput(engine, small_paths, clients, jobs_per_client)
            print(f"| {clients} | {clients * jobs_per_client} | {rate:.2f} |")
    finally:
        engine.stop()


if __name__ == "__main__":
    main()
