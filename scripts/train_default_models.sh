#!/usr/bin/env bash
# Reproduce the shipped default models (betterdepth_engine/weights) and the ablation runs of docs/results.md,
# on a CPU, from nothing. Every step is resumable: rerun the script after an interruption.
#
#   bash scripts/train_default_models.sh [RUNS_DIR]      (default build/runs; about 9 h on 2 CPU cores)
#
# Then: bash scripts/evaluate_default_models.sh RUNS_DIR  (docs/results.md's numbers)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-build/runs}
BD=".venv/bin/betterdepth"
PY=".venv/bin/python"
COMMON=(--checkpoint-every 100 --log-every 20)

# 3072 scenes at 256 px, rendered once (~2 min); every run below reuses them.
$PY scripts/cache_synthetic.py --output "$RUNS/scenes-256" --count 3072 --size 256
CACHE=(--scene-cache "$RUNS/scenes-256")

# Autoencoder for photos and depth maps: 1200 steps of 16 scenes, on 64 px crops.
$BD train autoencoder --output-dir "$RUNS/autoencoder" --steps 1200 --batch-size 16 --crop-size 64 \
    --learning-rate 1e-3 "${CACHE[@]}" "${COMMON[@]}"

# The base shipped before: 5600 steps of 16 whole scenes at 128 px (a cache of its own), run at 192 px; the learning
# rate constant for 3600 steps, then decayed to 0 over the last 2000. Low resolution lets a CPU budget teach it
# the global layout; its smoothness is the paper's premise (the refiner adds detail). The fine-tuning runs
# below use its state at 3600 steps (fp16, as it was shipped then), kept as RUNS/base-3600.
$PY scripts/cache_synthetic.py --output "$RUNS/scenes-128" --count 6144 --size 128
BASE=(--output-dir "$RUNS/base" --batch-size 16 --height 128 --width 128 --processing-resolution 192
      --scene-cache "$RUNS/scenes-128" "${COMMON[@]}")
if [ ! -d "$RUNS/base-3600" ]; then
    $BD train base "${BASE[@]}" --steps 3600
    $PY -c "import sys, torch; from betterdepth_engine.models.default_base import SmallDepthNet as Net; Net.from_pretrained(sys.argv[1], torch_dtype=torch.float16).save_pretrained(sys.argv[2])" \
        "$RUNS/base/base" "$RUNS/base-3600"
fi
$BD train base "${BASE[@]}" --steps 5600 --cooldown-steps 2000

# The shipped base: that one fine-tuned for 7000 more steps on 4x as many scenes (the first 6144 are the ones
# above), the rate warmed up again to 5e-4 and decayed over the last 2500. It runs at 160 px: of 128, 160 and
# 192 px, the best δ1 on validation scenes 100-299 (not the 100 that docs/results.md reports). The processing
# resolution is only written to the exported config; training is the same for any value.
$PY scripts/cache_synthetic.py --output "$RUNS/scenes-128-24k" --count 24576 --size 128
$BD train base --output-dir "$RUNS/base-continued" --init "$RUNS/base/base" --steps 7000 --cooldown-steps 2500 \
    --learning-rate 5e-4 --batch-size 16 --height 128 --width 128 --processing-resolution 160 \
    --scene-cache "$RUNS/scenes-128-24k" "${COMMON[@]}"

# A second, different base for the plug-and-play test: 700 steps at 256 px on scenes rendered on the fly,
# run at 192 px.
$BD train base --output-dir "$RUNS/base-256" --steps 700 --batch-size 8 "${COMMON[@]}"
if [ ! -d "$RUNS/base-700-at-192px" ]; then
    cp -r "$RUNS/base-256/base" "$RUNS/base-700-at-192px"
    $PY -c "import json, sys; p = sys.argv[1]; c = json.load(open(p)); c['processing_resolution'] = 192; json.dump(c, open(p, 'w'), indent=2)" \
        "$RUNS/base-700-at-192px/config.json"
fi

# Refiner: the paper's ablation at an equal budget (600 steps each), with the simulated blurry base.
REFINER=(--autoencoder "$RUNS/autoencoder/autoencoder" --base simulated --batch-size 8 --crop-size 128
         --learning-rate 3e-4 --high-timestep-fraction 0.2 "${CACHE[@]}" "${COMMON[@]}")
ABLATION_STEPS=${ABLATION_STEPS:-600}
$BD train refiner --output-dir "$RUNS/refiner-no-conditioning" --steps "$ABLATION_STEPS" "${REFINER[@]}" \
    --no-conditioning --no-pre-alignment --no-patch-mask
$BD train refiner --output-dir "$RUNS/refiner-conditioning-only" --steps "$ABLATION_STEPS" "${REFINER[@]}" \
    --no-pre-alignment --no-patch-mask
$BD train refiner --output-dir "$RUNS/refiner-pre-alignment" --steps "$ABLATION_STEPS" "${REFINER[@]}" --no-patch-mask
$BD train refiner --output-dir "$RUNS/refiner-full" --steps "$ABLATION_STEPS" "${REFINER[@]}"
mkdir -p "$RUNS/ablation"
rm -rf "$RUNS/ablation/refiner-full" && cp -r "$RUNS/refiner-full/refiner" "$RUNS/ablation/refiner-full"

# The full method's run, continued (it learns to add detail to a blurry base).
$BD train refiner --output-dir "$RUNS/refiner-full" --steps "${REFINER_STEPS:-2400}" "${REFINER[@]}"

# The shipped refiner: that run fine-tuned against a simulated base of varied quality, from almost exact to
# over-smoothed, so that it also keeps edges its conditioning already has right (a real base's are, in places).
$BD train refiner --output-dir "$RUNS/refiner-varied" --init "$RUNS/refiner-full/refiner" --base simulated:varied \
    --steps 3600 --cooldown-steps 600 --batch-size 8 --crop-size 128 --learning-rate 2e-4 \
    --high-timestep-fraction 0.2 "${CACHE[@]}" "${COMMON[@]}"
# Sharper depth maps from the same latent space: the autoencoder's decoder fine-tuned on depth maps, its encoder
# frozen (every refiner above stays valid). The refiner shipped until 2026-11-22 is that run with it, at the
# inference defaults chosen for it on validation scenes 100-299 (evaluate_default_models.sh, "select-*"): 4
# steps at 384 px; it denoises the target, the paper's form ("the target refiner" in docs/results.md).
$BD train autoencoder --output-dir "$RUNS/autoencoder-decoder" --fine-tune-decoder "$RUNS/autoencoder/autoencoder" \
    --steps 3000 --cooldown-steps 600 --batch-size 16 --crop-size 128 --learning-rate 5e-4 "${CACHE[@]}" \
    "${COMMON[@]}"
$PY scripts/export_default_models.py --base "$RUNS/base-continued" --refiner "$RUNS/refiner-varied" \
    --decoder "$RUNS/autoencoder-decoder" --denoising-steps 4 --processing-resolution 384 \
    --output "$RUNS/export-target"

# The shipped refiner: refiner-varied converted to denoise the correction to its conditioning latent
# (--predict-correction zeroes its output layer, so it starts from "return the base"), fine-tuned 3000 steps
# against the shipped base or the varied simulated base (half the batches each), then 3000 more with half the
# samples at t = 999, where its 1-step inference starts. Exported with the fine-tuned decoder, at the
# inference defaults chosen on validation scenes 100-299 ("select-correction-*"): 1 step at 384 px.
CORRECTION=(--base "$RUNS/base-continued/base" --second-base simulated:varied --second-base-share 0.5 --steps 3000
            --cooldown-steps 600 --batch-size 8 --crop-size 128 --learning-rate 2e-4 --eta 0.1 "${CACHE[@]}"
            "${COMMON[@]}")
$BD train refiner --output-dir "$RUNS/refiner-correction" --init "$RUNS/refiner-varied/refiner" --predict-correction \
    --high-timestep-fraction 0.2 "${CORRECTION[@]}"
$PY scripts/export_default_models.py --base "$RUNS/base-continued" --refiner "$RUNS/refiner-correction" \
    --decoder "$RUNS/autoencoder-decoder" --denoising-steps 1 --processing-resolution 384 \
    --output "$RUNS/export-correction"
$BD train refiner --output-dir "$RUNS/refiner-correction-2" --init "$RUNS/refiner-correction/refiner" \
    --high-timestep-fraction 0.5 "${CORRECTION[@]}"
$PY scripts/export_default_models.py --base "$RUNS/base-continued" --refiner "$RUNS/refiner-correction-2" \
    --decoder "$RUNS/autoencoder-decoder" --denoising-steps 1 --processing-resolution 384 --noise zero \
    --guard 0.08,1,1 --output betterdepth_engine/weights

# The paper's recipe against a real base: refiner-full fine-tuned with the 3600-step base's predictions
# as conditioning, 1500 steps each with the patch mask at the paper's eta = 0.1 (keeps about 37 % of patches
# with this base), at eta = 0.4 (about 80 %) and without it. docs/results.md, section 7, compares them. (The
# runs behind docs/results.md named that base by the path it was shipped at: the same fp16 file.)
TUNED=(--init "$RUNS/refiner-full/refiner" --base "$RUNS/base-3600" --batch-size 8
       --crop-size 128 --learning-rate 2e-4 "${CACHE[@]}" "${COMMON[@]}")
FINE_TUNE_STEPS=${FINE_TUNE_STEPS:-1500}
$BD train refiner --output-dir "$RUNS/refiner-tuned-eta0.1" --steps "$FINE_TUNE_STEPS" "${TUNED[@]}" --eta 0.1
$BD train refiner --output-dir "$RUNS/refiner-tuned-eta0.4" --steps "$FINE_TUNE_STEPS" "${TUNED[@]}" --eta 0.4
$BD train refiner --output-dir "$RUNS/refiner-tuned-no-mask" --steps "$FINE_TUNE_STEPS" "${TUNED[@]}" \
    --no-patch-mask

# The paper's recipe against the shipped base (docs/results.md, section 7): the target refiner fine-tuned for
# 1500 steps with that base's predictions as conditioning, eta = 0.1 (keeps about 55 % of patches), exported
# with the shipped decoder next to the shipped models (not shipped itself).
$BD train refiner --output-dir "$RUNS/refiner-on-base-continued" --init "$RUNS/refiner-varied/refiner" \
    --base "$RUNS/base-continued/base" --steps 1500 --cooldown-steps 300 --batch-size 8 --crop-size 128 \
    --learning-rate 2e-4 --high-timestep-fraction 0.2 --eta 0.1 "${CACHE[@]}" "${COMMON[@]}"
$PY scripts/export_default_models.py --base "$RUNS/base-continued" --refiner "$RUNS/refiner-on-base-continued" \
    --decoder "$RUNS/autoencoder-decoder" --denoising-steps 4 --processing-resolution 384 \
    --output "$RUNS/export-tuned-on-shipped-base"

# The same, with half the batches conditioned by the varied simulated base instead (--second-base), so that
# the refiner keeps seeing conditioning whose edges are right (docs/results.md, section 7; not shipped).
$BD train refiner --output-dir "$RUNS/refiner-mixed" --init "$RUNS/refiner-varied/refiner" \
    --base "$RUNS/base-continued/base" --second-base simulated:varied --second-base-share 0.5 --steps 1500 \
    --cooldown-steps 300 --batch-size 8 --crop-size 128 --learning-rate 2e-4 --high-timestep-fraction 0.2 \
    --eta 0.1 "${CACHE[@]}" "${COMMON[@]}"
$PY scripts/export_default_models.py --base "$RUNS/base-continued" --refiner "$RUNS/refiner-mixed" \
    --decoder "$RUNS/autoencoder-decoder" --denoising-steps 4 --processing-resolution 384 \
    --output "$RUNS/export-mixed"

# The target refiner at the scale it runs at: fine-tuned against the varied simulated base on 128 px crops of
# 384 px scenes (its default processing resolution; it was trained on 256 px scenes). docs/results.md,
# section 2; not shipped.
$PY scripts/cache_synthetic.py --output "$RUNS/scenes-384" --count 2048 --size 384
$BD train refiner --output-dir "$RUNS/refiner-at-384" --init "$RUNS/refiner-varied/refiner" --base simulated:varied \
    --steps 1500 --cooldown-steps 300 --batch-size 8 --crop-size 128 --height 384 --width 384 \
    --learning-rate 2e-4 --high-timestep-fraction 0.2 --eta 0.1 --scene-cache "$RUNS/scenes-384" "${COMMON[@]}"
$PY scripts/export_default_models.py --base "$RUNS/base-continued" --refiner "$RUNS/refiner-at-384" \
    --decoder "$RUNS/autoencoder-decoder" --denoising-steps 4 --processing-resolution 384 \
    --output "$RUNS/export-at-384"

# "A refiner that does no harm" (docs/results.md section 9): the shipped refiner fine-tuned with a loss on the
# decoded depth's neighbour differences (--decoded-gradient-weight), against the same bases as its own training.
# Probes, not shipped (on the blurry base its normals stay worse than the base's). They start from the refiner
# shipped on 2026-12-04 (betterdepth_engine/weights/refiner, fp16); 800 steps took about 11 min on one core. (The
# runs behind docs/results.md used the shipped fp16 copy of base-continued, betterdepth_engine/weights/base.)
# A first, shorter probe: weight 5 for 200 steps (the last 50 decayed); weight 0 is the control (the same 800
# steps with the paper's loss alone).
for setting in "5 200 50" "20 800 200" "50 800 200" "0 800 200"; do
    read -r weight steps cooldown <<< "$setting"
    $BD train refiner --output-dir "$RUNS/refiner-decoded-gradient-$weight" --init betterdepth_engine/weights/refiner \
        --base "$RUNS/base-continued/base" --second-base simulated:varied --second-base-share 0.5 --steps "$steps" \
        --cooldown-steps "$cooldown" --batch-size 8 --crop-size 128 --learning-rate 1e-4 --eta 0.1 \
        --high-timestep-fraction 0.5 --decoded-gradient-weight "$weight" "${CACHE[@]}" --log-every 10 \
        --checkpoint-every 100
done
