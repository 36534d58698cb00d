#!/usr/bin/env bash
# The evaluations behind docs/results.md, on held-out synthetic validation scenes (seeds never trained on).
#
#   bash scripts/evaluate_default_models.sh [RUNS_DIR] [RESULTS_DIR]   (defaults build/runs, build/results)
#
# Needs the runs of scripts/train_default_models.sh; the shipped models are the package defaults.
# Prints the tables of docs/results.md (scripts/results_tables.py) at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-build/runs}
RESULTS=${2:-build/results}
BD=".venv/bin/betterdepth"
PY=".venv/bin/python"
SCENES=${SCENES:-100}
EVAL=(eval --synthetic "$SCENES" --contact-sheet-rows 6 -q)

# The shipped base and refiner; and the shipped refiner on the kind of base it was trained with.
$BD "${EVAL[@]}" -o "$RESULTS/default"
# How the shipped base came about: the base shipped before (5600 steps) at the 192 px it was shipped with, and
# at the 128 px it was trained at; the shipped one is it fine-tuned (train_default_models.sh).
if [ ! -d "$RUNS/base-5600-at-128px" ]; then
    cp -r "$RUNS/base/base" "$RUNS/base-5600-at-128px"
    $PY -c "import json, sys; p = sys.argv[1]; c = json.load(open(p)); c['processing_resolution'] = 128; json.dump(c, open(p, 'w'), indent=2)" \
        "$RUNS/base-5600-at-128px/config.json"
fi
$BD "${EVAL[@]}" --base "$RUNS/base/base" -o "$RESULTS/base-5600"
$BD "${EVAL[@]}" --base "$RUNS/base-5600-at-128px" -o "$RESULTS/base-5600-at-128px"
$BD "${EVAL[@]}" --processing-resolution 0 -o "$RESULTS/default-native-resolution"  # refiner at 320 px, not 256
$BD "${EVAL[@]}" --base simulated:blurry -o "$RESULTS/simulated-blurry"
# How the shipped refiner came about: the refiner trained against the blurry simulated base, then fine-tuned
# against the varied one, both with the autoencoder's original decoder (the shipped refiner adds the
# fine-tuned decoder); and what the decoder fine-tuning did to ground truth sent through the autoencoder.
for refiner in refiner-full refiner-varied; do
    for base in default simulated:blurry; do
        $BD "${EVAL[@]}" --base "$base" --refiner "$RUNS/$refiner/refiner" -o "$RESULTS/$refiner-on-${base#simulated:}"
    done
done
$PY scripts/autoencoder_ceiling.py "$RUNS/autoencoder/autoencoder" "$RUNS/autoencoder-decoder/autoencoder" \
    --scenes "$SCENES" --figure docs/images/autoencoder_decoders.jpg | tee "$RESULTS/autoencoder_ceiling.md"
# Plug-and-play: the same refiner, unchanged, on other bases: the base shipped before (base-5600, above), a
# third trained base (700 steps at 256 px, run at 192 px), and ground truth degraded less than in training
# ("mild"; the refiner was trained on "blurry").
$BD "${EVAL[@]}" --base "$RUNS/base-700-at-192px" -o "$RESULTS/plug-and-play-base-700"
$BD "${EVAL[@]}" --base simulated:mild -o "$RESULTS/plug-and-play-mild"
# The ablation: four refiners trained for the same number of steps, evaluated on the simulated blurry base
# (the conditioning they were trained with) and on the shipped base.
for base in simulated:blurry default; do
    for variant in no-conditioning conditioning-only pre-alignment; do
        $BD "${EVAL[@]}" --base "$base" --refiner "$RUNS/refiner-$variant/refiner" \
            -o "$RESULTS/ablation-${base#simulated:}-$variant"
    done
    $BD "${EVAL[@]}" --base "$base" --refiner "$RUNS/ablation/refiner-full" -o "$RESULTS/ablation-${base#simulated:}-full"
done
# The paper's recipe against a real base (refiner-full fine-tuned with the 3600-step base's predictions as
# conditioning): on that base, and on the simulated blurry base (does it still add detail to a base whose
# layout is right?).
$BD "${EVAL[@]}" --base "$RUNS/base-3600" --refiner "$RUNS/refiner-full/refiner" -o "$RESULTS/base-3600"
for variant in eta0.1 eta0.4 no-mask; do
    for base in "$RUNS/base-3600" simulated:blurry; do
        $BD "${EVAL[@]}" --base "$base" --refiner "$RUNS/refiner-tuned-$variant/refiner" \
            -o "$RESULTS/tuned-$variant-on-$(basename "${base#simulated:}")"
    done
done
# The same recipe against the shipped base: the shipped refiner fine-tuned with its predictions.
for base in default simulated:blurry; do
    $BD "${EVAL[@]}" --base "$base" --refiner "$RUNS/export-tuned-on-shipped-base/refiner" \
        -o "$RESULTS/tuned-on-shipped-base-on-${base#simulated:}"
done

# docs/results.md's contact sheets, as JPEGs.
for name in default simulated-blurry plug-and-play-base-700; do
    $PY -c "import sys; from PIL import Image; Image.open(sys.argv[1]).convert('RGB').save(sys.argv[2], quality=90)" \
        "$RESULTS/$name/contact_sheet.png" "docs/images/results_${name//-/_}.jpg"
done

# Real photos (docs/photos, public domain and CC0): image | base | refined | normals.
$BD estimate docs/photos -o "$RESULTS/photos" --formats side-by-side -q
$PY scripts/photo_sheet.py "$RESULTS/photos" docs/images/results_photos.jpg

$PY scripts/results_tables.py "$RESULTS"
