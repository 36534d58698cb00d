"""What an evaluation writes: the markdown table, per-image CSV, metrics JSON and the contact sheet."""

from __future__ import annotations

import csv
import io
import math

import numpy as np

from betterdepth_engine import visualize
from betterdepth_engine.eval.datasets import DepthSample
from betterdepth_engine.eval import metrics
from betterdepth_engine.eval.metrics import depth_to_disparity
from betterdepth_engine.eval.runner import METRIC_NAMES, SampleEvaluation

# Table columns: (metric, header, factor, decimals). AbsRel and delta1 in percent, as papers report them.
TABLE_COLUMNS = (
    ("abs_rel", "AbsRel %", 100.0, 2),
    ("delta1", "δ1 %", 100.0, 2),
    ("boundary_f1", "boundary F1", 1.0, 3),
    ("dbe_accuracy", "DBE acc (px)", 1.0, 2),
    ("dbe_completeness", "DBE comp (px)", 1.0, 2),
)
# The surface-normal table (datasets with known intrinsics): mean angular error, share within 11.25 / 30
# degrees (percent) and flatness on ground-truth planes, in degrees.
NORMAL_COLUMNS = (
    ("normal_error_deg", "normal err (°)", 1.0, 2),
    ("normal_within_11_25", "< 11.25° %", 100.0, 1),
    ("normal_within_30", "< 30° %", 100.0, 1),
    ("flatness_deg", "flatness (°)", 1.0, 2),
)
ERROR_MAP_MAX = 0.2  # relative error shown at full brightness in the contact sheet's error panel
PANEL_HEIGHT = 160
CONTACT_SHEET_HEADERS = ("image", "base", "refined", "ground truth", "rel. error 0..20%", "base normals",
                         "refined normals", "true normals")


def markdown_table(summary: dict[str, dict[str, float]], columns=TABLE_COLUMNS) -> str:
    """Rows base / refined; columns AbsRel, delta1, boundary F1, DBE accuracy and completeness by default."""
    lines = ["| | " + " | ".join(header for _, header, _, _ in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    return "\n".join(lines + [markdown_row(variant, values, columns) for variant, values in summary.items()])


def markdown_row(label: str, values: dict[str, float], columns=TABLE_COLUMNS) -> str:
    """One row of `markdown_table`."""
    cells = ["n/a" if math.isnan(values[name]) else f"{values[name] * factor:.{decimals}f}"
             for name, _, factor, decimals in columns]
    return f"| {label} | " + " | ".join(cells) + " |"


def per_image_csv(evaluations: list[SampleEvaluation]) -> str:
    """One row per image and variant: name, variant, then every metric (empty where not computed)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("name", "variant", *METRIC_NAMES))
    for evaluation in evaluations:
        for variant, values in evaluation.metrics.items():
            writer.writerow((evaluation.name, variant,
                             *("" if math.isnan(values[n]) else f"{values[n]:.6g}" for n in METRIC_NAMES)))
    return out.getvalue()


def json_ready(value):
    """NaN -> None throughout, since JSON has no NaN."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def colorize_error(relative_error: np.ndarray, max_error: float = ERROR_MAP_MAX) -> np.ndarray:
    """Relative error -> H x W x 3 uint8 on a black-red-yellow ramp (0 black, max_error yellow); NaN black."""
    unit = np.clip(np.nan_to_num(relative_error) / max_error, 0.0, 1.0)
    rgb = np.stack([np.clip(2 * unit, 0, 1), np.clip(2 * unit - 1, 0, 1), np.zeros_like(unit)], axis=-1)
    return (rgb * 255 + 0.5).astype(np.uint8)


def normals_panel(depth_m: np.ndarray, sample: DepthSample) -> np.ndarray:
    """Normal colours of a depth map lifted with the sample's camera (recon's convention); gray without one."""
    from betterdepth_engine.recon.attributes import normal_colors

    if sample.intrinsics is None:
        return np.full((*depth_m.shape, 3), 128, np.uint8)
    keep = metrics.continuous_quads(sample.depth_m, sample.valid_mask & np.isfinite(depth_m), sample.intrinsics.focal_px)
    normals = metrics.surface_normals(np.nan_to_num(depth_m, nan=1.0), sample.intrinsics, keep)
    colors = normal_colors(normals.reshape(3, -1).T.astype(np.float32)).reshape(*depth_m.shape, 3)
    colors[~normals.any(axis=0)] = 0
    return colors


def contact_row(sample: DepthSample, evaluation: SampleEvaluation) -> np.ndarray:
    """image | base | refined | ground truth | relative error of the refined (else the base) depth | normals
    of base, refined and ground truth (with the sample's camera, cut at the truth's discontinuities).

    The three disparity panels share the ground truth's colour scale; gray marks a missing refiner or camera."""
    from PIL import Image

    valid = sample.valid_mask
    gt_disparity = np.where(valid, depth_to_disparity(sample.depth_m), np.nan)
    value_range = visualize.disparity_display_range(gt_disparity)
    shown = evaluation.depth_m.get("refined", evaluation.depth_m["base"])

    def prediction_panel(variant: str) -> np.ndarray:
        if variant not in evaluation.depth_m:  # evaluated without a refiner
            return np.full((*valid.shape, 3), 128, np.uint8)
        return visualize.colorize_disparity(depth_to_disparity(evaluation.depth_m[variant]), value_range)

    panels = [
        np.asarray(Image.fromarray(sample.rgb).resize(valid.shape[::-1], Image.Resampling.BILINEAR)),
        prediction_panel("base"),
        prediction_panel("refined"),
        visualize.colorize_disparity(gt_disparity, value_range),
        colorize_error(np.where(valid, np.abs(shown - sample.depth_m) / np.maximum(sample.depth_m, 1e-6), np.nan)),
        normals_panel(evaluation.depth_m["base"], sample),
        normals_panel(evaluation.depth_m["refined"], sample) if "refined" in evaluation.depth_m
        else np.full((*valid.shape, 3), 128, np.uint8),
        normals_panel(sample.depth_m, sample),
    ]
    width = max(1, round(valid.shape[1] * PANEL_HEIGHT / valid.shape[0]))
    resized = [np.asarray(Image.fromarray(panel).resize((width, PANEL_HEIGHT), Image.Resampling.NEAREST))
               for panel in panels]
    return _join(resized, axis=1)


def contact_sheet(rows: list[np.ndarray]) -> np.ndarray:
    """A labelled header above the rows of `contact_row` (narrower rows padded white); H x W x 3 uint8."""
    from PIL import Image, ImageDraw

    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    panel_width = (rows[0].shape[1] - 4 * (len(CONTACT_SHEET_HEADERS) - 1)) // len(CONTACT_SHEET_HEADERS)
    header = Image.new("RGB", (width, 18), "white")
    draw = ImageDraw.Draw(header)
    for index, label in enumerate(CONTACT_SHEET_HEADERS):
        draw.text((index * (panel_width + 4) + 2, 3), label, fill="black")
    return _join([np.asarray(header), *rows], axis=0)


def _join(arrays: list[np.ndarray], axis: int) -> np.ndarray:
    """Concatenate pictures with 4-pixel white gaps."""
    gap_shape = list(arrays[0].shape)
    gap_shape[axis] = 4
    gap = np.full(gap_shape, 255, np.uint8)
    pieces = [arrays[0]]
    for array in arrays[1:]:
        pieces += [gap, array]
    return np.concatenate(pieces, axis=axis)
