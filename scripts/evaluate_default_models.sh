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
SCENES=${SCENES:-100}
EVAL=(eval --synthetic "$SCENES" --contact-sheet-rows 6 -q)

# The shipped base and refiner.
$BD "${EVAL[@]}" -o "$RESULTS/default"
# Plug-and-play: the same refiner on a second, different base (the base run's 700-step model, run at 192 px).
$BD "${EVAL[@]}" --base "$RUNS/base-700-at-192px" -o "$RESULTS/plug-and-play"
# The ablation: four refiners trained for the same number of steps, all on the shipped base.
for variant in no-conditioning conditioning-only pre-alignment; do
    $BD "${EVAL[@]}" --refiner "$RUNS/refiner-$variant/refiner" -o "$RESULTS/ablation-$variant"
done
$BD "${EVAL[@]}" --refiner "$RUNS/ablation/refiner-full" -o "$RESULTS/ablation-full"

.venv/bin/python scripts/results_tables.py "$RESULTS"
