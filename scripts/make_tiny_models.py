"""Write an untrained tiny base model and refiner (random weights) for demos and CPU smoke tests.

Usage: python scripts/make_tiny_models.py OUT_DIR   ->  OUT_DIR/base, OUT_DIR/refiner
"""

import sys
from pathlib import Path

from betterdepth_engine.models.tiny import TINY_LABEL, build_tiny_base, build_tiny_refiner

if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/tiny-models")
    build_tiny_base(out / "base")
    build_tiny_refiner(out / "refiner")
    print(f"wrote {out}/base and {out}/refiner: {TINY_LABEL}")
