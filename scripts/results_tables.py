"""Print docs/results.md's tables from the metrics.json files of scripts/evaluate_default_models.sh.

    python scripts/results_tables.py build/results
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from betterdepth_engine.eval.report import markdown_table

ABLATION = [("no conditioning", "ablation-no-conditioning"), ("conditioning only", "ablation-conditioning-only"),
            ("+ global pre-alignment", "ablation-pre-alignment"), ("+ local patch masking (full)", "ablation-full")]


def metrics(results: Path, name: str) -> dict[str, dict[str, float]]:
    summary = json.loads((results / name / "metrics.json").read_text())["metrics"]
    return {variant: {key: math.nan if value is None else value for key, value in values.items()}
            for variant, values in summary.items()}


def main() -> None:
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "build/results")
    default = metrics(results, "default")
    print("## Shipped base vs. shipped refiner\n")
    print(markdown_table({"base (SmallDepthNet)": default["base"], "BetterDepth (refined)": default["refined"]}))
    plug = metrics(results, "plug-and-play")
    print("\n## Plug-and-play: the same refiner on a second base\n")
    print(markdown_table({"second base": plug["base"], "second base + refiner": plug["refined"]}))
    print("\n## Ablation (equal training budgets, shipped base)\n")
    rows = {"base alone": default["base"]}
    rows.update({label: metrics(results, name)["refined"] for label, name in ABLATION})
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
