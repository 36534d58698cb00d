#!/usr/bin/env bash
# BetterDepth's own training recipe (Zhang et al. 2024, section 4; /work/shared/method.md section 2), for a GPU:
# the refiner trained on Hypersim + Virtual KITTI (Marigold's 90/10 mix) against a frozen Depth Anything base,
# initialised from Stable Diffusion 2, with global pre-alignment and local patch masking (patch 8, eta 0.1),
# 5000 steps of batch 32 (2 x 16 accumulated), Adam(W) at 3e-5, bf16, v-prediction.
#
#   HYPERSIM=data/hypersim/processed/train VKITTI=data/vkitti bash scripts/train_paper_recipe.sh [RUN_DIR]
#
# Data: Marigold's layouts (docs/evaluation.md, Datasets): Hypersim as Marigold's preprocessing writes it
# (<scene>/rgb_<cam>_fr<n>.png + depth_plane_<cam>_fr<n>.png, planar depth in mm), Virtual KITTI 2 as
# distributed (rgb/.../rgb_<n>.jpg + depth/.../depth_<n>.png, cm). Optional split files (Marigold's
# data_split/): HYPERSIM_SPLIT, VKITTI_SPLIT. A folder or Marigold's .tar works as the root.
# Models (hub ids, or local folders on a machine without network):
#   BASE  default depth-anything-v2-large (CC-BY-NC-4.0; the paper used Depth Anything v1: BASE=LiheYoung/depth-anything-large-hf)
#   INIT  default stabilityai/stable-diffusion-2 (or INIT=prs-eth/marigold-depth-v1-1 to start from Marigold)
# GPUs: GPUS=N runs N processes through `accelerate launch` (the batch of 32 is then 2 x 16/N x N);
# the run resumes when the same command is run again (RUN_DIR/checkpoint, every 250 steps).
#
# Expected time: the paper reports about 1.5 days on one RTX A6000 (fp32). Measured on one H200 in bf16
# (scripts/bench_training.py, random weights, docs/benchmarks.md): 0.55 s per batch of 2, peak 21 GiB, so at
# most about 12 hours for the 5000 x 32 images; an H100 (not measured) should be in the same range. Tested
# end to end with tiny models and fixture datasets in tests/train/test_real_data.py.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-build/paper-recipe}
: "${HYPERSIM:?set HYPERSIM to the Hypersim root: the processed train folder or tar}"
: "${VKITTI:?set VKITTI to the Virtual KITTI 2 root}"
BASE=${BASE:-depth-anything-v2-large}
INIT=${INIT:-stabilityai/stable-diffusion-2}
GPUS=${GPUS:-1}
if [ $((16 % GPUS)) -ne 0 ]; then
    echo "GPUS must divide 16 (batch 32 = 2 per GPU x 16 / GPUS accumulated x GPUS)" >&2
    exit 2
fi
ACCUMULATION=$((16 / GPUS))
DATASETS="hypersim:$HYPERSIM${HYPERSIM_SPLIT:+:$HYPERSIM_SPLIT},vkitti:$VKITTI${VKITTI_SPLIT:+:$VKITTI_SPLIT}"

ARGS=(train refiner --output-dir "$RUN"
      --datasets "$DATASETS" --dataset-weights 0.9,0.1 --no-sky-as-far
      --base "$BASE" --init "$INIT"
      --patch-size 8 --eta 0.1
      --steps 5000 --batch-size 2 --gradient-accumulation "$ACCUMULATION" --learning-rate 3e-5
      --height 480 --width 640 --mixed-precision bf16
      --data-workers 8 --checkpoint-every 250 --log-every 10)

if [ "$GPUS" -gt 1 ]; then
    .venv/bin/accelerate launch --multi_gpu --num_processes "$GPUS" -m betterdepth_engine "${ARGS[@]}"
else
    .venv/bin/betterdepth "${ARGS[@]}"
fi
# The exported refiner: RUN/refiner. Use it with the same base:
#   betterdepth estimate photo.jpg -o out --base "$BASE" --refiner "$RUN/refiner" --steps 50 --ensemble-size 10
