"""Batch benchmark: images/s of `betterdepth batch` as a plain loop and on Ray with 1 and 2 workers.

    python scripts/bench_batch.py [--images 24] [--size 512]

Each setting runs as its own `betterdepth batch` process on the same images (shipped models, their defaults),
into a fresh output folder, so each pays what a user pays: start-up, a local Ray runtime, model loading.
The table also gives the steady-state rate from the manifest (per-image seconds) and Ray's cost per image.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def make_images(folder: Path, count: int, size: int) -> None:
    photos = [Image.open(path).convert("RGB") for path in sorted((ROOT / "samples").glob("*.jpg"))]
    for index in range(count):
        photo = photos[index % len(photos)].rotate(index * 7, expand=False)
        photo.resize((size, size * 3 // 4), Image.Resampling.LANCZOS).save(folder / f"img{index:03d}.png")


def run_batch(images: Path, out: Path, workers: int) -> tuple[float, float]:
    """(wall seconds of the whole command, mean per-image seconds inside the workers)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "betterdepth_engine", "batch", str(images), "-o", str(out),
                    "--workers", str(workers), "-q"], check=True, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (out / "_batch" / "manifest.jsonl").read_text().splitlines()]
    return wall, sum(row["seconds"] for row in rows) / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    images = work / "images"
    images.mkdir()
    make_images(images, args.images, args.size)
    print(f"machine: {os.cpu_count()} CPUs, no GPU; {args.images} images of {args.size}x{args.size * 3 // 4}; "
          "shipped models at their defaults")
    print()
    print("| run | wall s | images/s (wall) | s per image in a worker | vs plain loop |")
    print("|---|---|---|---|---|")
    walls = {}
    for label, workers in (("plain loop (--workers 0)", 0), ("Ray, 1 worker", 1), ("Ray, 2 workers", 2)):
        walls[workers], per_image = run_batch(images, work / f"out{workers}", workers)
        rate = args.images / walls[workers]
        print(f"| {label} | {walls[workers]:.1f} | {rate:.2f} | {per_image:.3f} | {walls[0] / walls[workers]:.2f}x |")
    print()
    print(f"Ray's overhead per image (1 worker vs the plain loop, runtime start-up included): "
          f"{(walls[1] - walls[0]) / args.images * 1000:.0f} ms")


if __name__ == "__main__":
    main()
