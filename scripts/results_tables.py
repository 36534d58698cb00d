"""Print docs/results.md's tables from the metrics.json files of scripts/evaluate_default_models.sh.

    python scripts/results_tables.py build/results
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from betterdepth_engine.eval.report import markdown_table

ABLATION = [("no conditioning", "no-conditioning"), ("conditioning only", "conditioning-only"),
            ("+ global pre-alignment", "pre-alignment"), ("+ local patch masking (full)", "full")]
FINE_TUNED = [("fine-tuned, patch mask eta = 0.1 (paper)", "eta0.1"), ("fine-tuned, eta = 0.4", "eta0.4"),
              ("fine-tuned, no patch mask", "no-mask")]


def metrics(results: Path, name: str) -> dict[str, dict[str, float]]:
    summary = json.loads((results / name / "metrics.json").read_text())["metrics"]
    return {variant: {key: math.nan if value is None else value for key, value in values.items()}
            for variant, values in summary.items()}


def main() -> None:
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "build/results")
    default = metrics(results, "default")
    print("## Shipped base vs. shipped refiner\n")
    native = metrics(results, "default-native-resolution")
    print(markdown_table({"base (shipped SmallDepthNet)": default["base"], "+ refiner": default["refined"],
                          "+ refiner at the images' 320 px (not 256)": native["refined"]}))
    print("\n## How the shipped base came about (each with the shipped refiner)\n")
    rows = {}
    for label, scores in (("5600 steps, run at 192 px (shipped before)", metrics(results, "base-5600")),
                          ("5600 steps, run at 128 px (its training resolution)",
                           metrics(results, "base-5600-at-128px")),
                          ("+ 7000 steps on 4x the scenes, run at 160 px (shipped)", default)):
        rows[label] = scores["base"]
        rows[f"{label} + refiner"] = scores["refined"]
    print(markdown_table(rows))
    blurry = metrics(results, "simulated-blurry")
    print("\n## The shipped refiner on the kind of base it was trained with (simulated blurry)\n")
    print(markdown_table({"simulated blurry base": blurry["base"], "+ refiner": blurry["refined"]}))
    for base, title in (("default", "the shipped base"), ("blurry", "the simulated blurry base")):
        print(f"\n## How the shipped refiner came about, on {title}\n")
        print(markdown_table({
            "base alone": metrics(results, f"refiner-full-on-{base}")["base"],
            "refiner trained against the blurry simulated base (shipped before)":
                metrics(results, f"refiner-full-on-{base}")["refined"],
            "+ fine-tuned against the varied simulated base": metrics(results, f"refiner-varied-on-{base}")["refined"],
            "+ fine-tuned decoder (shipped)": (default if base == "default" else blurry)["refined"],
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
    print("\n## The shipped refiner fine-tuned against the shipped base (eta = 0.1)\n")
    rows = {}
    for label, base, shipped in (("shipped base", "default", default), ("simulated blurry base", "blurry", blurry)):
        tuned = metrics(results, f"tuned-on-shipped-base-on-{base}")
        rows.update({label: tuned["base"], f"{label} + shipped refiner": shipped["refined"],
                     f"{label} + refiner fine-tuned against the shipped base": tuned["refined"]})
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
