"""Run a BetterDepth pipeline over a dataset and score the base and the refined prediction of each image.

One pipeline call per image gives both predictions (`DepthResult.base_disparity` and `.disparity`), so the
two are scored on exactly the same conditioning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.eval import metrics
from betterdepth_engine.eval.datasets import DepthSample, EvalProtocol
from betterdepth_engine.images import LoadedImage
from betterdepth_engine.models.base import BasePrediction
from betterdepth_engine.pipeline import BetterDepthPipeline, RefineOptions

METRIC_NAMES = ("abs_rel", "delta1", "delta2", "delta3", "rmse", "boundary_f1", "dbe_accuracy", "dbe_completeness",
                *metrics.NORMAL_METRIC_NAMES)


@dataclass
class SampleEvaluation:
    name: str
    metrics: dict[str, dict[str, float]]  # variant ("base", "refined") -> metric name -> value
    depth_m: dict[str, np.ndarray] = field(repr=False)  # variant -> aligned, clipped depth at the depth's size


def resize_to(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a prediction to the ground truth's size (NaN spreads to its neighbours only)."""
    if values.shape == tuple(shape):
        return values
    tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, None]
    resized = torch.nn.functional.interpolate(tensor, size=tuple(shape), mode="bilinear", align_corners=False)
    return resized[0, 0].numpy()


def disparity_in_space(disparity: np.ndarray, space: str) -> np.ndarray:
    """The pipeline's disparity as the quantity to align: itself, or 1 / disparity for depth predictors
    (whose depth the pipeline carries as 1 / depth, e.g. `--base-space depth` files or metric models)."""
    if space == "disparity":
        return disparity
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(disparity > 0, 1.0 / disparity, np.nan)


def score_prediction(disparity: np.ndarray, sample: DepthSample, protocol: EvalProtocol,
                     alignment: str = "disparity") -> tuple[dict[str, float], np.ndarray]:
    """(metrics, aligned depth in metres) of one prediction of `sample`."""
    prediction = resize_to(disparity_in_space(disparity, alignment), sample.depth_m.shape)
    depth_m = metrics.aligned_depth(prediction, sample.depth_m, sample.valid_mask, protocol.min_depth_m,
                                    min(protocol.max_depth_m, sample.max_depth_m), alignment,
                                    protocol.alignment_max_resolution)
    scores = metrics.depth_metrics(depth_m, sample.depth_m, sample.valid_mask, protocol.dense_ground_truth,
                                   sample.intrinsics)
    return scores, depth_m


class SimulatedBase:
    """A base "model" of known quality for testing refiners: each sample's ground truth degraded by
    `data.degrade` (`kind` blurry, mild or varied; blurred, displaced, affinely perturbed), seeded by the sample index.
    It needs the ground truth, so only `evaluate_sample` can use it (`betterdepth eval --base simulated:KIND`)."""

    def __init__(self, kind: str, seed: int = 0):
        from betterdepth_engine.data.degrade import DEGRADATIONS

        if kind not in DEGRADATIONS:
            raise BetterDepthError(BetterDepthError.BAD_INPUT, f"Unknown simulated base '{kind}'.",
                                   f"Use one of: {', '.join(f'simulated:{name}' for name in DEGRADATIONS)}.")
        self.kind, self.seed = kind, seed
        self.name = f"simulated:{kind}"

    def predict(self, image: LoadedImage) -> BasePrediction:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, "A simulated base needs ground truth depth.",
                               "Use it with `betterdepth eval` only.")

    def prediction_for(self, sample: DepthSample, index: int, protocol: EvalProtocol) -> BasePrediction:
        from betterdepth_engine.data.degrade import degrade_depth

        if not protocol.dense_ground_truth:
            raise BetterDepthError(BetterDepthError.BAD_INPUT, "A simulated base needs dense ground truth depth.",
                                   "Use it on the synthetic set or a dataset with dense depth.")
        depth = torch.from_numpy(resize_to(sample.depth_m, sample.rgb.shape[:2]))
        valid = torch.from_numpy(resize_to(sample.valid_mask.astype(np.float32), sample.rgb.shape[:2]) > 0.99)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        degraded = degrade_depth(depth, valid, generator, self.kind).numpy().astype(np.float32)
        return BasePrediction(degraded, np.ones(degraded.shape, dtype=bool))


def evaluate_sample(pipeline: BetterDepthPipeline, sample: DepthSample, options: RefineOptions,
                    protocol: EvalProtocol, alignment: str = "disparity", index: int = 0) -> SampleEvaluation:
    """Run the pipeline once on `sample` and score its base prediction and (with a refiner) its refinement."""
    image = LoadedImage(rgb=sample.rgb, path=Path(sample.name))
    with torch.inference_mode():
        if isinstance(pipeline.base, SimulatedBase):
            prediction = pipeline.base.prediction_for(sample, index, protocol)
            result = pipeline.refine_batch([image], [prediction], options)[0]
        else:
            result = pipeline(image, options)
    predictions = {"base": result.base_disparity}
    if pipeline.refiner is not None:
        predictions["refined"] = result.disparity
    scores, depths = {}, {}
    for variant, disparity in predictions.items():
        scores[variant], depths[variant] = score_prediction(disparity, sample, protocol, alignment)
    return SampleEvaluation(sample.name, scores, depths)


def summarize(evaluations: list[SampleEvaluation]) -> dict[str, dict[str, float]]:
    """Mean of each metric over images, per variant; images where a metric is NaN (no ground-truth edge,
    sparse ground truth) are left out of that metric's mean only."""
    summary = {}
    for variant in evaluations[0].metrics if evaluations else ():
        summary[variant] = {}
        for name in METRIC_NAMES:
            values = np.array([e.metrics[variant][name] for e in evaluations], dtype=np.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: the mean is NaN, as it should be
                summary[variant][name] = float(np.nanmean(values))
    return summary


def images_per_metric(evaluations: list[SampleEvaluation]) -> dict[str, dict[str, int]]:
    """How many images each mean in `summarize` averages."""
    return {variant: {name: int(sum(np.isfinite(e.metrics[variant][name]) for e in evaluations))
                      for name in METRIC_NAMES}
            for variant in (evaluations[0].metrics if evaluations else ())}
