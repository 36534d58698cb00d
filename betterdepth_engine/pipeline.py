"""The BetterDepth pipeline: base model -> refiner -> ensemble -> result, for one image or a batch.

Every array in a `DepthResult` is affine-invariant disparity in the *base model's* frame (the same scale and
shift as `base_disparity`), float32, at the input image's resolution, NaN where the base had no valid value.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from betterdepth_engine import align
from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.images import LoadedImage
from betterdepth_engine.models.base import BaseDepthModel, BasePrediction
from betterdepth_engine.models.refiner import DepthRefiner
from betterdepth_engine.refine_options import MIN_PROCESSING_RESOLUTION, RefineOptions
from betterdepth_engine.resize import image_to_tensor, resize_and_pad, unpad

# on_progress(stage, done, total): stages are "base", "refine" (per denoising step) and "ensemble".
ProgressCallback = Callable[[str, int, int], None]
@dataclass
class DepthResult:
    disparity: np.ndarray  # refined (or the base's, without a refiner)
    base_disparity: np.ndarray  # the base prediction used as conditioning
    valid_mask: np.ndarray
    uncertainty: np.ndarray | None  # spread of the ensemble members, in disparity units; None for 1 member
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    metadata: dict = field(default_factory=dict)


class BetterDepthPipeline:
    """A base model and an optional refiner.

    `pipeline(image)` maps one image to a `DepthResult`. For many images, `predict_base` each one (so one bad
    file fails alone) and pass them to `refine_batch`, which runs equal-size images through the refiner
    together; every image gets its own seeded noise, so batching does not change results.
    """

    def __init__(self, base: BaseDepthModel, refiner: DepthRefiner | None):
        self.base = base
        self.refiner = refiner

    def __call__(
        self, image: LoadedImage, options: RefineOptions | None = None, on_progress: ProgressCallback | None = None
    ) -> DepthResult:
        prediction, seconds = self.predict_base(image, on_progress)
        result = self.refine_batch([image], [prediction], options, on_progress)[0]
        result.timings = {"base": seconds, **result.timings}
        return result

    def predict_base(self, image: LoadedImage, on_progress: ProgressCallback | None = None):
        """(checked base prediction, seconds it took)."""
        start = time.perf_counter()
        prediction = self.base.predict(image)
        seconds = time.perf_counter() - start
        _check_base_prediction(prediction, image)
        if on_progress:
            on_progress("base", 1, 1)
        return prediction, seconds

    def resolve_settings(self, options: RefineOptions) -> dict:
        """The settings a refinement will use: the options, with the refiner's defaults where unset."""
        config = self.refiner.config
        ensemble_size = options.ensemble_size or config.default_ensemble_size
        # Members from zero noise are all the same: an ensemble asked for without a noise kind draws random noise.
        default_noise = "random" if ensemble_size > 1 else config.default_noise
        return {
            "denoising_steps": options.denoising_steps or config.default_denoising_steps,
            "ensemble_size": ensemble_size,
            "processing_resolution": (
                config.default_processing_resolution if options.processing_resolution is None
                else options.processing_resolution
            ),
            "strength": options.strength or config.default_strength,
            "noise": options.noise or default_noise,
            "ensemble_reduction": options.ensemble_reduction,
            # The refiner's guard (align.guard_correction) unless it has none or it is turned off; None = the
            # refiner's raw output, as in the paper.
            "guard": ({"threshold": config.guard_threshold, "radius": config.guard_radius,
                       "median_radius": config.guard_median_radius}
                      if config.has_guard and options.guard else None),
            "seed": options.seed,
        }

    @torch.no_grad()
    def refine_batch(
        self, images: list[LoadedImage], predictions: list[BasePrediction], options: RefineOptions | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[DepthResult]:
        """Refine equal-size images together (all in one refiner call); without a refiner, return the bases."""
        options = options or RefineOptions()
        if len({(image.height, image.width) for image in images}) > 1:
            raise ValueError("refine_batch needs images of one size; group them first")
        results = []
        for image, prediction in zip(images, predictions):
            base_disparity = np.where(prediction.valid_mask, prediction.disparity, np.nan).astype(np.float32)
            metadata = {"base_model": self.base.name, "image_notes": image.notes, "refiner": None}
            results.append(DepthResult(base_disparity.copy(), base_disparity, prediction.valid_mask, None, {}, metadata))
        if self.refiner is None:
            return results
        settings = self.resolve_settings(options)
        timings: dict[str, float] = {}
        refined = self._refine(images, predictions, settings, timings, on_progress)
        for result, (disparity, uncertainty) in zip(results, refined):
            result.disparity, result.uncertainty = disparity, uncertainty
            result.timings = dict(timings)
            result.metadata.update(refiner=self.refiner.config.description or "refiner", batch_size=len(images),
                                   **settings)
        return results

    def _refine(self, images, predictions, settings, timings, on_progress):
        """[(refined disparity, uncertainty or None)] per image, in each base's frame."""
        refiner, config = self.refiner, self.refiner.config
        clock = time.perf_counter()
        # Conditioning: each base normalised by its own percentiles, invalid pixels read as farthest.
        disparity = torch.stack([torch.from_numpy(np.nan_to_num(p.disparity)) for p in predictions])[:, None].float()
        valid = torch.stack([torch.from_numpy(p.valid_mask) for p in predictions])[:, None]
        low, high = align.valid_percentiles(disparity, valid, config.low_percentile, config.high_percentile)
        normalized = torch.where(valid, align.normalize_to_unit_range(disparity, low, high), -1.0)
        resolution, multiple = settings["processing_resolution"], refiner.downscale_factor
        if resolution == 0 and max(images[0].height, images[0].width) < MIN_PROCESSING_RESOLUTION:
            raise BetterDepthError(
                BetterDepthError.BAD_INPUT,
                f"The image is {images[0].width}x{images[0].height}; at its own resolution (processing resolution "
                f"0) the refiner needs a long side of at least {MIN_PROCESSING_RESOLUTION} px.",
                f"Use a processing resolution of {MIN_PROCESSING_RESOLUTION} px or more.")
        pixels, padding = resize_and_pad(torch.cat([image_to_tensor(i.rgb) for i in images]), resolution, multiple)
        normalized_at_resolution, _ = resize_and_pad(normalized, resolution, multiple)
        conditioning = normalized_at_resolution
        if config.target_space == "depth":
            conditioning = align.disparity_to_depth_normalized(normalized_at_resolution, config.depth_range_ratio)
        timings["prepare"] = time.perf_counter() - clock

        members_per_image = settings["ensemble_size"]
        # One generator per image, all from the same seed: an image's result does not depend on its batch.
        generators = [torch.Generator(device="cpu").manual_seed(settings["seed"]) for _ in images]
        step_progress = (lambda done, total: on_progress("refine", done, total)) if on_progress else None
        try:
            members = refiner.refine(
                pixels, conditioning, members_per_image, settings["denoising_steps"], settings["strength"],
                generators, step_progress, timings, settings["noise"],
            ).float().cpu()
        except torch.OutOfMemoryError:
            raise BetterDepthError(
                BetterDepthError.OUT_OF_MEMORY,
                f"Out of GPU memory refining {len(images)} {images[0].width}x{images[0].height} image(s) at "
                f"{resolution} px with {members_per_image} ensemble member(s).",
                "Lower --processing-resolution, --batch-size or --ensemble-size, or use --dtype fp16.",
            ) from None

        clock = time.perf_counter()
        members = unpad(members, padding)  # [B * E, 1, h, w] in the U-Net's target space
        if config.target_space == "depth":
            members = align.depth_to_disparity_normalized(members, config.depth_range_ratio)
        normalized_at_resolution = unpad(normalized_at_resolution, padding)
        member_valid = F.interpolate(valid.float(), size=members.shape[-2:], mode="nearest") > 0.5
        full_size = (images[0].height, images[0].width)
        outputs = []
        for index in range(len(images)):
            image_members = members[index * members_per_image:(index + 1) * members_per_image, 0]
            ensembled, spread = align.ensemble_affine_invariant(
                image_members, member_valid[index, 0], settings["ensemble_reduction"])
            correction = self._correction(ensembled, normalized_at_resolution[index, 0], member_valid[index, 0],
                                          settings["guard"])
            outputs.append(self._to_base_frame(correction, spread, disparity[index, 0], valid[index, 0],
                                               low[index], high[index], full_size, members_per_image > 1))
        timings["ensemble"] = time.perf_counter() - clock
        if on_progress:
            on_progress("ensemble", 1, 1)
        return outputs

    def _correction(self, ensembled, base_normalized, valid, guard):
        """What the refiner changes in the base at the processing resolution ([-1, 1] units, both in disparity),
        after the refiner's guard (`align.guard_correction`) where `guard` is on."""
        if not self.refiner.uses_conditioning_channels:
            # A training-free U-Net's output is in its own affine frame: bring it back to the base's layout.
            ensembled = align.align_to(ensembled[None], base_normalized[None], valid[None])[0]
        if guard is not None:
            ensembled = align.guard_correction(ensembled[None, None], base_normalized[None, None],
                                               guard["threshold"], guard["radius"], guard["median_radius"])[0, 0]
        return ensembled - base_normalized

    def _to_base_frame(self, correction, spread, disparity, valid, low, high, full_size, with_spread):
        """The correction upsampled and added to the base in its own frame; NaN where the base was invalid.

        Only the correction is resampled: the base keeps its full-resolution detail and its values beyond the
        2 %/98 % normalisation, and where the refiner changes nothing the result is the base exactly."""
        span = (high - low).clamp_min(1e-6)
        correction = F.interpolate(correction[None, None], size=full_size, mode="bilinear", align_corners=False)
        refined = disparity + correction[0, 0] * span / 2.0
        refined = torch.where(valid, refined, torch.nan).numpy().astype(np.float32)
        if not with_spread:
            return refined, None
        spread = F.interpolate(spread[None, None], size=full_size, mode="bilinear", align_corners=False)
        return refined, (spread[0, 0] * span / 2.0).numpy().astype(np.float32)


def _check_base_prediction(prediction: BasePrediction, image: LoadedImage) -> None:
    if prediction.disparity.shape != (image.height, image.width):
        raise BetterDepthError(
            BetterDepthError.BASE_FILE_MISMATCH,
            f"The base prediction is {prediction.disparity.shape[1]}x{prediction.disparity.shape[0]} but the image "
            f"is {image.width}x{image.height}.",
            "Base predictions must be at the image's resolution (after EXIF rotation).",
        )
    if not prediction.valid_mask.any():
        raise BetterDepthError(
            BetterDepthError.BAD_DEPTH, f"The base prediction for '{image.stem}' has no valid pixel.",
            "Check the base file: it holds only NaN, infinite or non-positive depth values.",
        )
