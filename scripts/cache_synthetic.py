"""Render a fixed set of synthetic scenes once, for training runs that reuse them (--scene-cache).

    python scripts/cache_synthetic.py --output build/scenes-256 --count 3000 --size 256

Rerunning the same command finishes an interrupted cache.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from betterdepth_engine.data.cache import write_scene_cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True, help="cache folder")
    parser.add_argument("--count", type=int, default=3000, help="number of scenes (default: %(default)s)")
    parser.add_argument("--size", type=int, default=256, help="square image size in pixels (default: %(default)s)")
    parser.add_argument("--split", choices=("train", "val"), default="train", help="seed range (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="rendering processes (default: %(default)s)")
    args = parser.parse_args()
    write_scene_cache(args.output, args.split, args.count, args.size, args.size, args.workers)


if __name__ == "__main__":
    main()
