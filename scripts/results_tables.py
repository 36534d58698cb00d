"""Print docs/results.md's tables from the metrics.json files of scripts/evaluate_default_models.sh.

    python scripts/results_tables.py build/results
    python scripts/results_tables.py build/results --harm   (only "A refiner that does no harm")
    python scripts/results_tables.py build/results --held-out   (its choices on scenes 100-199, held out 300-399)
    python scripts/results_tables.py build/results --blurry-probes   (what was tried on the blurry base's normals)
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from betterdepth_engine.eval.report import NORMAL_COLUMNS, TABLE_COLUMNS, markdown_table

ABLATION = [("no conditioning", "no-conditioning"), ("conditioning only", "conditioning-only"),
            ("+ global pre-alignment", "pre-alignment"), ("+ local patch masking (full)", "full")]
# The refiners' inference defaults, chosen on validation scenes 100-299: (label, results folder).
CORRECTION_SETTINGS = ((1, 256), (1, 384), (2, 384), (4, 384))
SELECTION = [(f"shipped refiner, {steps} step{'s' * (steps > 1)} at {resolution} px",
              f"select-correction-{steps}-steps-{resolution}px") for steps, resolution in CORRECTION_SETTINGS]
SELECTION += [(f"its first run (3000 steps), {steps} step{'s' * (steps > 1)} at {resolution} px",
               f"select-correction-first-{steps}-steps-{resolution}px") for steps, resolution in CORRECTION_SETTINGS]
SELECTION += [(f"target refiner, {steps} steps at {resolution} px", f"select-{steps}-steps-{resolution}px")
              for steps, resolution in ((2, 256), (4, 256), (4, 320), (4, 384), (4, 448), (8, 384))]
SELECTION.append(("target refiner, 4 steps at 384 px, 3 ensemble members", "select-4-steps-384px-3-members"))
FINE_TUNED = [("fine-tuned, patch mask eta = 0.1 (paper)", "eta0.1"), ("fine-tuned, eta = 0.4", "eta0.4"),
              ("fine-tuned, no patch mask", "no-mask")]


def metrics(results: Path, name: str) -> dict[str, dict[str, float]]:
    summary = json.loads((results / name / "metrics.json").read_text())["metrics"]
    return {variant: {key: math.nan if value is None else value for key, value in values.items()}
            for variant, values in summary.items()}


LOWER_IS_BETTER = {"abs_rel", "dbe_accuracy", "dbe_completeness", "normal_error_deg", "flatness_deg"}
# "A refiner that does no harm": AbsRel, delta1, boundary F1, normal error, share within 11.25 deg, flatness.
HARM_COLUMNS = (*TABLE_COLUMNS[:3], *NORMAL_COLUMNS[:2], NORMAL_COLUMNS[3])
# (title, results folder with random starting noise, with zero noise, the other candidate or None)
HARM_SETS = (("texture-copy scenes, shipped base", "harm-texture", "harm-texture-zero", "harm-texture-256"),
             ("validation scenes, shipped base", "harm-default", "harm-default-zero", None),
             ("validation scenes, simulated blurry base", "harm-blurry", "harm-blurry-zero", None))


@dataclass
class PairedDifference:
    """Refined minus base over scenes, in the table's units: mean, 95 % bootstrap interval, scenes made worse."""

    mean: float
    low: float
    high: float
    worse: int
    scenes: int


def per_scene_rows(results: Path, name: str, first_scene: int, last_scene: float = math.inf) -> list[dict]:
    """The rows of an evaluation's per_image.csv for the scenes numbered [first_scene, last_scene)."""
    return [row for row in csv.DictReader((results / name / "per_image.csv").open())
            if first_scene <= int(row["name"].split("_")[1]) < last_scene]


def selection_metrics(results: Path, name: str, first_scene: int = 100) -> dict[str, dict[str, float]]:
    """Per-variant means over the scenes numbered first_scene and up, NaNs left out."""
    rows = per_scene_rows(results, name, first_scene)
    return {variant: {key: float(np.nanmean([float(row[key] or "nan") for row in rows if row["variant"] == variant]))
                      for key, *_ in TABLE_COLUMNS}
            for variant in ("base", "refined")}


def paired_differences(results: Path, name: str, first_scene: int, last_scene: int,
                       columns=TABLE_COLUMNS) -> dict[str, PairedDifference]:
    """Per metric, refined minus base over the scenes [first_scene, last_scene); the interval from 2000
    resamplings of scenes (seed 0)."""
    per_scene: dict[str, dict[str, dict]] = {}
    for row in per_scene_rows(results, name, first_scene, last_scene):
        per_scene.setdefault(row["name"], {})[row["variant"]] = row
    generator = np.random.default_rng(0)
    differences_by_metric = {}
    for key, _, factor, _ in columns:
        differences = np.array([float(pair["refined"][key] or "nan") - float(pair["base"][key] or "nan")
                                for pair in per_scene.values()])
        differences = differences[np.isfinite(differences)] * factor
        low, high = np.percentile(generator.choice(differences, (2000, len(differences))).mean(axis=1), [2.5, 97.5])
        worse = differences > 0 if key in LOWER_IS_BETTER else differences < 0
        differences_by_metric[key] = PairedDifference(differences.mean(), low, high, int(worse.sum()), len(differences))
    return differences_by_metric


def mean_and_interval(difference: PairedDifference, decimals: int) -> tuple[str, str]:
    return f"{difference.mean:+.{decimals}f}", f"[{difference.low:+.{decimals}f}, {difference.high:+.{decimals}f}]"


def harm_tables(results: Path) -> None:
    """Base, refined with random starting noise and with zero noise; then refined minus base per scene."""
    for title, random_name, zero_name, other_name in HARM_SETS:
        if not all((results / name / "metrics.json").exists() for name in (random_name, zero_name)):
            print(f"\n## {title}: not evaluated ({random_name}, {zero_name} missing)")
            continue
        random_noise, zero_noise = metrics(results, random_name), metrics(results, zero_name)
        rows = {"base": random_noise["base"], "+ refiner, random noise (the default before)": random_noise["refined"],
                "+ refiner, zero noise (the default now)": zero_noise["refined"]}
        if other_name and (results / other_name / "metrics.json").exists():
            rows["+ refiner, random noise, 256 px"] = metrics(results, other_name)["refined"]
        print(f"\n## {title}\n")
        print(markdown_table(rows, HARM_COLUMNS))
        print("\nRefined minus base per scene, mean [95 % interval] (scenes made worse):\n")
        print("| | " + " | ".join(header for _, header, _, _ in HARM_COLUMNS) + " |")
        print("|---|" + "---:|" * len(HARM_COLUMNS))
        for label, name in (("random noise", random_name), ("zero noise", zero_name), ("random noise, 256 px", other_name)):
            if not name or not (results / name / "metrics.json").exists():
                continue
            differences = paired_differences(results, name, 0, 100, HARM_COLUMNS)
            cells = [" ".join(mean_and_interval(differences[key], decimals)) + f" ({differences[key].worse})"
                     for key, _, _, decimals in HARM_COLUMNS]
            print(f"| {label} | " + " | ".join(cells) + " |")


# "A refiner that does no harm", chosen cleanly: each setting on validation scenes 100-199 ("choose-*"), the
# choice reported on scenes 300-399 ("held-*"), which no setting was chosen on. (label, results folder).
HELD_OUT_CHOICE = (("texture-copy scenes, random noise", "choose-texture-random"),
                   ("texture-copy scenes, zero noise", "choose-texture-zero"),
                   ("shipped base, random noise", "choose-default-random"),
                   ("shipped base, zero noise", "choose-default-zero"),
                   ("blurry base, zero noise", "choose-blurry-zero"))
HELD_OUT_REPORT = (("texture-copy scenes, random noise", "held-texture-random"),
                   ("texture-copy scenes, zero noise", "held-texture-zero"),
                   ("shipped base, random noise", "held-default-random"),
                   ("shipped base, zero noise", "held-default-zero"),
                   ("blurry base, random noise", "held-blurry-random"),
                   ("blurry base, zero noise", "held-blurry-zero"))


def held_out_tables(results: Path, sets=(("validation scenes 100-199 (choice)", HELD_OUT_CHOICE, 100, 200),
                                         ("held-out scenes 300-399 (report)", HELD_OUT_REPORT, 300, 400))) -> None:
    """Per scene range: the means of base and refined, then refined minus base per scene."""
    for title, evaluations, first, last in sets:
        present = [(label, name) for label, name in evaluations if (results / name / "metrics.json").exists()]
        rows = {}
        for label, name in present:
            means = metrics(results, name)
            rows.setdefault(f"{label.split(',')[0]}: base", means["base"])
            rows[f"{label}: refined"] = means["refined"]
        print(f"\n## {title}\n")
        print(markdown_table(rows, HARM_COLUMNS))
        print("\nRefined minus base per scene, mean [95 % interval] (scenes made worse):\n")
        print("| | " + " | ".join(header for _, header, _, _ in HARM_COLUMNS) + " |")
        print("|---|" + "---:|" * len(HARM_COLUMNS))
        for label, name in present:
            differences = paired_differences(results, name, first, last, HARM_COLUMNS)
            cells = [" ".join(mean_and_interval(differences[key], decimals)) + f" ({differences[key].worse})"
                     for key, _, _, decimals in HARM_COLUMNS]
            print(f"| {label} | " + " | ".join(cells) + " |")


# What was tried against the blurry base's normals (scenes 100-199): (label, results folder).
BLURRY_PROBES = (
    ("the default: 1 step, zero noise, 384 px", "choose-blurry-zero"),
    ("autoencoder round trip alone (no U-Net), 384 px", "probe-blurry-roundtrip-384"),
    ("autoencoder round trip alone, 256 px", "probe-blurry-roundtrip-256"),
    ("processing resolution 256 px", "probe-blurry-zero-256"),
    ("the U-Net's correction halved", "probe-blurry-scale0.5"),
    ("difference decoding", "probe-blurry-difference"),
    *((f"fine-tuned, decoded-gradient weight {weight}", f"decoded-gradient-{weight}-choose-blurry")
      for weight in (5, 20, 50)),
    ("control: fine-tuned 800 steps without it (weight 0)", "decoded-gradient-0-choose-blurry"),
    ("fine-tuned, weight 20, difference decoding", "probe-decoded-gradient-20-blurry-difference"),
    ("shipped base, the default", "choose-default-zero"),
    *((f"shipped base, fine-tuned, weight {weight}", f"decoded-gradient-{weight}-choose-default")
      for weight in (20, 50, 0)),
    ("shipped base, difference decoding", "probe-default-difference"),
    ("shipped base, fine-tuned, weight 20, difference decoding", "probe-decoded-gradient-20-default-difference"),
    ("texture-copy, the default", "choose-texture-zero"),
    ("texture-copy, fine-tuned, weight 20", "decoded-gradient-20-choose-texture"),
)
PROBE_COLUMNS = tuple(next(column for column in HARM_COLUMNS if column[0] == key)
                      for key in ("boundary_f1", "abs_rel", "normal_error_deg", "flatness_deg"))


def blurry_probe_table(results: Path) -> None:
    """Refined minus base per scene on scenes 100-199 for each candidate that was evaluated."""
    print("| candidate (scenes 100-199) | " + " | ".join(header for _, header, _, _ in PROBE_COLUMNS) + " |")
    print("|---|" + "---:|" * len(PROBE_COLUMNS))
    for label, name in BLURRY_PROBES:
        if not (results / name / "metrics.json").exists():
            continue
        differences = paired_differences(results, name, 100, 200, HARM_COLUMNS)  # the intervals of --held-out
        print(f"| {label} | " + " | ".join(" ".join(mean_and_interval(differences[key], decimals))
                                           for key, _, _, decimals in PROBE_COLUMNS) + " |")


def main() -> None:
    if "--blurry-probes" in sys.argv:
        blurry_probe_table(Path(sys.argv[1]))
        return
    if "--harm" in sys.argv:
        harm_tables(Path(sys.argv[1]))
        return
    if "--held-out" in sys.argv:
        held_out_tables(Path(sys.argv[1]))
        return
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "build/results")
    default, target = metrics(results, "default"), metrics(results, "target-refiner")
    print("## Shipped base vs. shipped refiner\n")
    print(markdown_table({
        "base (shipped SmallDepthNet)": default["base"],
        "+ refiner (1 step at 384 px: its defaults)": default["refined"],
        "+ target refiner (shipped until 2026-11-22), 4 steps at 384 px": target["refined"],
        "+ target refiner, 2 steps at 256 px (its defaults before that)":
            metrics(results, "target-refiner-2-steps-256px")["refined"],
        "+ target refiner, 1 step at 384 px": metrics(results, "target-refiner-1-step")["refined"],
        "control: base through the refiner's autoencoder alone (no U-Net), 384 px":
            metrics(results, "autoencoder-round-trip")["refined"],
    }))
    for title, reported_name, selection_name in (
            ("Shipped refiner", "default", "select-correction-1-steps-384px"),
            ("Target refiner (4 steps at 384 px)", "target-refiner", "select-4-steps-384px")):
        print(f"\n## {title} minus shipped base, per scene\n")
        print("| | scenes 0-99: mean | 95 % interval | worse | scenes 100-299: mean | 95 % interval | worse |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        reported = paired_differences(results, reported_name, 0, 100)
        selection = paired_differences(results, selection_name, 100, 300)
        for key, header, _, decimals in TABLE_COLUMNS:
            cells = [cell for differences in (reported, selection) for cell in (
                *mean_and_interval(differences[key], decimals), f"{differences[key].worse} of {differences[key].scenes}")]
            print(f"| {header} | " + " | ".join(cells) + " |")
    print("\n## Choosing the refiner's inference defaults (validation scenes 100-299)\n")
    rows = {"shipped base": selection_metrics(results, SELECTION[0][1])["base"]}
    rows.update({f"+ {label}": selection_metrics(results, name)["refined"] for label, name in SELECTION})
    rows["control: base through the autoencoder alone (no U-Net), 384 px"] = \
        selection_metrics(results, "select-autoencoder-round-trip")["refined"]
    print(markdown_table(rows))
    print("\n## How the shipped base came about (each with the shipped refiner)\n")
    rows = {}
    for label, scores in (("5600 steps, run at 192 px (shipped before)", metrics(results, "base-5600")),
                          ("5600 steps, run at 128 px (its training resolution)",
                           metrics(results, "base-5600-at-128px")),
                          ("+ 7000 steps on 4x the scenes, run at 160 px (shipped)", default)):
        rows[label] = scores["base"]
        rows[f"{label} + refiner"] = scores["refined"]
    print(markdown_table(rows))
    blurry, target_on_blurry = metrics(results, "simulated-blurry"), metrics(results, "target-refiner-on-blurry")
    print("\n## The refiners on the simulated blurry base (the kind the target refiner was trained with)\n")
    print(markdown_table({
        "simulated blurry base": blurry["base"],
        "+ shipped refiner (1 step at 384 px: its defaults)": blurry["refined"],
        "+ shipped refiner, 1 step at 256 px": metrics(results, "simulated-blurry-256px")["refined"],
        "+ target refiner, 4 steps at 384 px": target_on_blurry["refined"],
        "+ target refiner, 4 steps at 256 px": metrics(results, "target-refiner-on-blurry-4-steps-256px")["refined"],
        "+ target refiner, 2 steps at 256 px": metrics(results, "target-refiner-on-blurry-2-steps-256px")["refined"],
        "control: base through the refiner's autoencoder alone (no U-Net), 384 px":
            metrics(results, "autoencoder-round-trip-blurry")["refined"],
    }))
    print("\n## The target refiner fine-tuned at the scale it runs at (1500 steps on 384 px scenes)\n")
    print(markdown_table({
        "shipped base": default["base"], "+ target refiner": target["refined"],
        "+ target refiner fine-tuned at 384 px": metrics(results, "at-384-on-default")["refined"],
        "simulated blurry base": blurry["base"], "+ target refiner (384 px)": target_on_blurry["refined"],
        "+ target refiner fine-tuned at 384 px (run at 384 px)": metrics(results, "at-384-on-blurry")["refined"],
    }))
    for base, title in (("default", "the shipped base"), ("blurry", "the simulated blurry base")):
        print(f"\n## How the target refiner came about, on {title}\n")
        print(markdown_table({
            "base alone": metrics(results, f"refiner-full-on-{base}")["base"],
            "refiner trained against the blurry simulated base (shipped before)":
                metrics(results, f"refiner-full-on-{base}")["refined"],
            "+ fine-tuned against the varied simulated base": metrics(results, f"refiner-varied-on-{base}")["refined"],
            "+ fine-tuned decoder (the target refiner)": (target if base == "default" else target_on_blurry)["refined"],
        }))
    for base, title in (("default", "the shipped base"), ("blurry", "the simulated blurry base")):
        print(f"\n## How the shipped refiner came about, on {title} (4 steps, then 1 step, at 384 px)\n")
        print(markdown_table({
            "base alone": metrics(results, f"correction-first-on-{base}")["base"],
            "the target refiner": (target if base == "default" else target_on_blurry)["refined"],
            "converted to predict corrections, 3000 steps against both bases":
                metrics(results, f"correction-first-on-{base}")["refined"],
            "+ 3000 more steps, half at t = 999 (shipped)": (default if base == "default" else blurry)["refined"],
        }))
    print("\n## Plug-and-play: the same refiner on other bases\n")
    rows = {}
    for label, name in (("base shipped before (5600 steps, run at 192 px)", "base-5600"),
                        ("third base (700 steps, 256 px)", "plug-and-play-base-700"),
                        ("simulated mild base", "plug-and-play-mild")):
        scores = metrics(results, name)
        rows[label] = scores["base"]
        rows[f"{label} + refiner"] = scores["refined"]
    print(markdown_table(rows))
    print("\n## Plug-and-play, refined minus base per scene (mean [95 % interval])\n")
    print("| | " + " | ".join(header for _, header, _, _ in TABLE_COLUMNS) + " |")
    print("|---|" + "---:|" * len(TABLE_COLUMNS))
    for label, name in (("base shipped before (5600 steps, 192 px)", "base-5600"),
                        ("third base (700 steps)", "plug-and-play-base-700"),
                        ("simulated blurry base, refiner at 256 px", "simulated-blurry-256px"),
                        ("simulated mild base", "plug-and-play-mild")):
        differences = paired_differences(results, name, 0, 100)
        cells = [" ".join(mean_and_interval(differences[key], decimals)) for key, _, _, decimals in TABLE_COLUMNS]
        print(f"| {label} | " + " | ".join(cells) + " |")
    for base, title in (("blurry", "the simulated blurry base"), ("default", "the shipped base")):
        print(f"\n## Ablation (equal training budgets), on {title}\n")
        rows = {"base alone": metrics(results, f"ablation-{base}-full")["base"]}
        rows.update({label: metrics(results, f"ablation-{base}-{name}")["refined"] for label, name in ABLATION})
        print(markdown_table(rows))
    for base, title in (("base-3600", "the base they were tuned with"), ("blurry", "the simulated blurry base")):
        print(f"\n## Refiners fine-tuned against the 3600-step base (equal budgets), on {title}\n")
        rows = {"base alone": metrics(results, f"tuned-eta0.1-on-{base}")["base"],
                "before fine-tuning (refiner-full)": metrics(results, "base-3600" if base == "base-3600"
                                                             else "refiner-full-on-blurry")["refined"]}
        rows.update({label: metrics(results, f"tuned-{name}-on-{base}")["refined"] for label, name in FINE_TUNED})
        print(markdown_table(rows))
    print("\n## The target refiner fine-tuned against the shipped base (eta = 0.1), alone or mixed\n")
    rows = {}
    for label, base, before in (("shipped base", "default", target), ("simulated blurry base", "blurry",
                                                                        target_on_blurry)):
        tuned = metrics(results, f"tuned-on-shipped-base-on-{base}")
        rows.update({label: tuned["base"], f"{label} + target refiner": before["refined"],
                     f"{label} + refiner fine-tuned against the shipped base": tuned["refined"],
                     f"{label} + refiner fine-tuned against it and the varied simulated base":
                         metrics(results, f"mixed-on-{base}")["refined"]})
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
