#!/usr/bin/env bash
# The README's demo: refined depth for a shipped sample photo, with pictures, in demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
models=()
if [ ! -d betterdepth_engine/weights/refiner ]; then
  echo "NOTE: the trained default models are not shipped yet. This demo uses an UNTRAINED TINY MODEL with"
  echo "      random weights: it shows that the whole pipeline runs, not what the depth looks like."
  .venv/bin/python scripts/make_tiny_models.py build/tiny-models
  models=(--base build/tiny-models/base --refiner build/tiny-models/refiner)
fi
.venv/bin/betterdepth estimate samples/coffee.jpg -o demo_output --formats color,side-by-side,png16 "${models[@]}"
echo "Results: demo_output/coffee_disparity.npy (float32 disparity), demo_output/coffee_side_by_side.png (picture)"
