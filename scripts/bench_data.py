"""Synthetic-data generation speed on this machine's CPU, as a markdown table (images per second).

    python scripts/bench_data.py            # about a minute

Each configuration renders validation scenes in batches of 8 (SyntheticDepthDataset's way) after a
warm-up batch; the texture banks are filled first. Configurations: one process (the caller set to 2 torch
threads; the renderer itself runs on one, see data/synthetic.py), and a DataLoader with 2 worker processes,
which is how training should use a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time

import torch
from torch.utils.data import DataLoader

from betterdepth_engine.data.synthetic import SyntheticDepthDataset, fill_banks

BATCH = 8


def in_process(size: int, images: int, threads: int) -> tuple[float, float]:
    """(images per second, CPU milliseconds per image) rendering in this process with `threads` torch threads.

    CPU time counts only work actually done, so unlike wall time it barely changes when other jobs share
    the machine: 2000 / (CPU ms per image) is what two otherwise idle cores would render per second.
    """
    torch.set_num_threads(threads)
    dataset = SyntheticDepthDataset("val", size, size, batch_size=BATCH)
    dataset.batch(0)  # warm-up
    start, start_cpu = time.perf_counter(), time.process_time()
    for index in range(1, 1 + images // BATCH):
        dataset.batch(index)
    rendered = (images // BATCH) * BATCH
    return rendered / (time.perf_counter() - start), 1000 * (time.process_time() - start_cpu) / rendered


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)


def worker_processes(size: int, images: int, workers: int) -> float:
    """Images per second from a DataLoader with `workers` processes of one torch thread each."""
    batches = images // BATCH
    dataset = SyntheticDepthDataset("val", size, size, batch_size=BATCH, num_batches=batches + workers)
    loader = iter(DataLoader(dataset, batch_size=None, num_workers=workers, worker_init_fn=_one_thread))
    for _ in range(workers):  # the first batch of each worker includes its start-up
        next(loader)
    start = time.perf_counter()
    for _ in range(batches):
        next(loader)
    return batches * BATCH / (time.perf_counter() - start)


def cpu_name() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48, help="timed images per configuration at 256x256")
    args = parser.parse_args()
    fill_banks()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, no GPU used; torch {torch.__version__}; "
          f"load average at start {os.getloadavg()[0]:.2f}\n")
    print("| resolution | configuration | images/s | wall ms per image | CPU ms per image |")
    print("|---|---|---|---|---|")
    for size, images in ((256, args.images), (512, max(BATCH, args.images // 4))):
        rate, cpu_ms = in_process(size, images, threads=2)
        label = "1 process (torch.set_num_threads(2))"
        print(f"| {size}x{size} | {label} | {rate:.1f} | {1000 / rate:.0f} | {cpu_ms:.0f} |")
        rate = worker_processes(size, images, workers=2)
        print(f"| {size}x{size} | DataLoader, 2 worker processes | {rate:.1f} | {1000 / rate:.0f} | - |", flush=True)


if __name__ == "__main__":
    main()
