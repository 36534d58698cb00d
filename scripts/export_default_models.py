"""Copy trained models into the package as the shipped defaults: fp16 weights, plus the runs' provenance.

    python scripts/export_default_models.py --base RUNS/base-continued --refiner RUNS/refiner-correction-2 \
        --decoder RUNS/autoencoder-decoder --denoising-steps 1 --processing-resolution 384 --noise zero \
        --guard 0.08,1,1 --output betterdepth_engine/weights

--base and --refiner are run folders of `betterdepth train base|refiner` (the refiner's folder already
holds the autoencoder it was trained on, as vae/). --decoder, optional, is a run of `betterdepth train
autoencoder --fine-tune-decoder` whose autoencoder replaces that vae/: its encoder must be bit-identical to
the refiner's (same latent space), which is checked. --denoising-steps, --processing-resolution, --noise and
--guard (THRESHOLD,RADIUS,MEDIAN_RADIUS: align.guard_correction) set the refiner's inference defaults (chosen on validation scenes, docs/results.md; a run exports the settings it was
trained at). Written: OUTPUT/base, OUTPUT/refiner (fp16
safetensors; the engine loads them in the dtype it runs in) and OUTPUT/training_runs.json (each run's
settings, final log entry and wall time; a fine-tuned model's earlier runs as base_init_1, refiner_init_1,
refiner_init_2, ...). The output folder is replaced only when everything was written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from betterdepth_engine.models.default_base import SmallDepthNet
from betterdepth_engine.models.refiner import DepthRefiner
from betterdepth_engine.train.autoencoder import LATENT_SPACE_MODULES


def run_record(run: Path) -> dict:
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    # A resumed run restarts elapsed_s at 0: add up the segments.
    wall_s, previous = 0.0, 0.0
    for entry in log:
        wall_s += entry["elapsed_s"] - previous if entry["elapsed_s"] >= previous else entry["elapsed_s"]
        previous = entry["elapsed_s"]
    return {"settings": json.loads((run / "config.json").read_text()), "final_log_entry": log[-1],
            "wall_time_s": round(wall_s)}


def runs_started_from(run: Path, setting: str) -> list[Path]:
    """The run, then the runs it started from (its `setting`, e.g. init, names a model inside an earlier run
    folder), back to the first that did not start from a run."""
    runs = [run]
    while (source := json.loads((runs[-1] / "config.json").read_text()).get(setting)) and \
            (Path(source).parent / "log.jsonl").exists():
        runs.append(Path(source).parent)
    return runs


def with_fine_tuned_decoder(refiner: DepthRefiner, decoder_run: Path) -> DepthRefiner:
    """The refiner with the decoder run's autoencoder, after checking that the latent space is the same."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(decoder_run / "autoencoder")
    trained, tuned = refiner.vae.state_dict(), vae.state_dict()
    latent_space = [name for name in trained if name.split(".")[0] in LATENT_SPACE_MODULES]
    if not all(torch.equal(trained[name], tuned[name]) for name in latent_space) or \
            vae.config.scaling_factor != refiner.vae.config.scaling_factor:
        sys.exit(f"{decoder_run}: its encoder is not the one the refiner was trained with; fine-tune the decoder "
                 f"of the refiner's autoencoder (--fine-tune-decoder RUN/autoencoder).")
    refiner.vae = vae.eval().requires_grad_(False)
    return refiner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="base model run folder")
    parser.add_argument("--refiner", type=Path, required=True, help="refiner run folder")
    parser.add_argument("--decoder", type=Path, help="autoencoder run that fine-tuned the refiner's decoder")
    parser.add_argument("--denoising-steps", type=int, help="the refiner's default denoising steps")
    parser.add_argument("--processing-resolution", type=int, help="the refiner's default long side in pixels")
    parser.add_argument("--noise", choices=("random", "zero"), help="the refiner's default starting noise")
    parser.add_argument("--guard", metavar="THRESHOLD,RADIUS,MEDIAN_RADIUS",
                        help="the refiner's guard on its output (docs/results.md section 9)")
    parser.add_argument("--output", type=Path, default=Path("betterdepth_engine/weights"))
    args = parser.parse_args()

    staging = args.output.with_name(args.output.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    SmallDepthNet.from_pretrained(args.base / "base", dtype=torch.float16).save_pretrained(staging / "base")
    refiner = DepthRefiner.from_pretrained(args.refiner / "refiner", dtype=torch.float32)
    if args.decoder:
        refiner = with_fine_tuned_decoder(refiner, args.decoder)
    refiner.config.default_denoising_steps = args.denoising_steps or refiner.config.default_denoising_steps
    refiner.config.default_processing_resolution = (args.processing_resolution
                                                    or refiner.config.default_processing_resolution)
    refiner.config.default_noise = args.noise or refiner.config.default_noise
    if args.guard:
        threshold, radius, median_radius = args.guard.split(",")
        refiner.config.guard_threshold = float(threshold)
        refiner.config.guard_radius, refiner.config.guard_median_radius = int(radius), int(median_radius)
    refiner.vae.half()
    refiner.unet.half()
    refiner.save_pretrained(staging / "refiner")
    # Fine-tuned models (--init RUN/base or RUN/refiner, --fine-tune-decoder RUN/autoencoder): record every run
    # of the chain.
    chains = {model: runs_started_from(run, "init") for model, run in (("base", args.base), ("refiner", args.refiner))}
    records = {}
    for model, chain in chains.items():
        records[model] = run_record(chain[0])
        for number, earlier in enumerate(chain[1:], 1):
            records[f"{model}_init_{number}"] = run_record(earlier)
    # The first refiner run of the chain names the autoencoder the refiner was trained on.
    autoencoder_run = Path(json.loads((chains["refiner"][-1] / "config.json").read_text())["autoencoder"]).parent
    records["autoencoder"] = run_record(autoencoder_run)
    if args.decoder:
        decoder_runs = [run for run in runs_started_from(args.decoder, "fine_tune_decoder") if run != autoencoder_run]
        records["autoencoder_decoder"] = run_record(decoder_runs[0])
        for number, run in enumerate(decoder_runs[1:], 1):
            records[f"autoencoder_decoder_init_{number}"] = run_record(run)
    (staging / "training_runs.json").write_text(json.dumps(records, indent=2) + "\n")
    if (args.output / "README.md").exists():  # the hand-written model card stays
        shutil.copy2(args.output / "README.md", staging / "README.md")
    shutil.rmtree(args.output, ignore_errors=True)
    staging.rename(args.output)
    size_mb = sum(path.stat().st_size for path in args.output.rglob("*") if path.is_file()) / 2**20
    print(f"exported to {args.output} ({size_mb:.1f} MB)")


if __name__ == "__main__":
    main()
