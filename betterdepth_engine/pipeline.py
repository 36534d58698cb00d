"""The BetterDepth pipeline: base model -> refiner -> ensemble -> result, one image at a time.

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

# on_progress(stage, done, total): stages are "base", "refine" (per denoising step) and "ensemble".
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class RefineOptions:
    """Per-call settings; None means the refiner's own default from its config."""

    denoising_steps: int | None = None
    ensemble_size: int | None = None
    processing_resolution: int | None = None  # long side in pixels; 0 = the input's own resolution
    strength: float | None = None
    ensemble_reduction: str = "mean"
    seed: int = 0


@dataclass
class DepthResult:
    disparity: np.ndarray  # refined (or the base's, without a refiner)
    base_disparity: np.ndarray  # the base prediction used as conditioning
    valid_mask: np.ndarray
    uncertainty: np.ndarray | None  # spread of the ensemble members, in disparity units; None for 1 member
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    metadata: dict = field(default_factory=dict)


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> [1, 3, H, W] float32 in [-1, 1]."""
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def resize_and_pad(tensor: torch.Tensor, processing_resolution: int, multiple: int) -> tuple[torch.Tensor, tuple]:
    """Resize so the long side is `processing_resolution` (0 keeps the size), then pad to a multiple of `multiple`."""
    from diffusers.pipelines.marigold import MarigoldImageProcessor as Resizer

    if processing_resolution > 0:
        tensor = Resizer.resize_to_max_edge(tensor, processing_resolution, "bilinear")
    return Resizer.pad_image(tensor, multiple)


def unpad(tensor: torch.Tensor, padding: tuple) -> torch.Tensor:
    from diffusers.pipelines.marigold import MarigoldImageProcessor as Resizer

    return Resizer.unpad_image(tensor, padding)


class BetterDepthPipeline:
    """A base model and an optional refiner; `__call__` maps one image to a `DepthResult`."""

    def __init__(self, base: BaseDepthModel, refiner: DepthRefiner | None):
        self.base = base
        self.refiner = refiner

    def __call__(
        self, image: LoadedImage, options: RefineOptions | None = None, on_progress: ProgressCallback | None = None
    ) -> DepthResult:
        options = options or RefineOptions()
        timings: dict[str, float] = {}
        start = time.perf_counter()
        prediction = self.base.predict(image)
        timings["base"] = time.perf_counter() - start
        if on_progress:
            on_progress("base", 1, 1)
        _check_base_prediction(prediction, image)
        base_disparity = np.where(prediction.valid_mask, prediction.disparity, np.nan).astype(np.float32)
        metadata = {"base_model": self.base.name, "image_notes": image.notes}
        if self.refiner is None:
            metadata["refiner"] = None
            return DepthResult(base_disparity.copy(), base_disparity, prediction.valid_mask, None, timings, metadata)
        refined, uncertainty, refine_timings, settings = self.refine(image, prediction, options, on_progress)
        timings.update(refine_timings)
        metadata.update(refiner=self.refiner.config.description or "refiner", **settings)
        return DepthResult(refined, base_disparity, prediction.valid_mask, uncertainty, timings, metadata)

    @torch.no_grad()
    def refine(
        self, image: LoadedImage, prediction: BasePrediction, options: RefineOptions,
        on_progress: ProgressCallback | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, float], dict]:
        """Refine the base disparity; returns (disparity, uncertainty, timings, settings used)."""
        refiner, config = self.refiner, self.refiner.config
        settings = {
            "denoising_steps": options.denoising_steps or config.default_denoising_steps,
            "ensemble_size": options.ensemble_size or config.default_ensemble_size,
            "processing_resolution": (
                config.default_processing_resolution if options.processing_resolution is None
                else options.processing_resolution
            ),
            "strength": options.strength or config.default_strength,
            "ensemble_reduction": options.ensemble_reduction,
            "seed": options.seed,
        }
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        # Conditioning: the base disparity normalised by its own percentiles, invalid pixels read as farthest.
        disparity = torch.from_numpy(np.nan_to_num(prediction.disparity))[None, None].float()
        valid = torch.from_numpy(prediction.valid_mask)[None, None]
        low, high = align.valid_percentiles(disparity, valid, config.low_percentile, config.high_percentile)
        normalized = torch.where(valid, align.normalize_to_unit_range(disparity, low, high), -1.0)
        conditioning = normalized
        if config.target_space == "depth":
            conditioning = align.disparity_to_depth_normalized(normalized, config.depth_range_ratio)

        multiple = refiner.downscale_factor
        pixels, padding = resize_and_pad(image_to_tensor(image.rgb), settings["processing_resolution"], multiple)
        conditioning, _ = resize_and_pad(conditioning, settings["processing_resolution"], multiple)
        timings["prepare"] = time.perf_counter() - clock

        generator = torch.Generator(device="cpu").manual_seed(settings["seed"])
        step_progress = (lambda done, total: on_progress("refine", done, total)) if on_progress else None
        try:
            members = refiner.refine(
                pixels, conditioning, settings["ensemble_size"], settings["denoising_steps"],
                settings["strength"], generator, step_progress, timings,
            ).float().cpu()
        except torch.OutOfMemoryError:
            raise BetterDepthError(
                BetterDepthError.OUT_OF_MEMORY,
                f"Out of GPU memory refining a {image.width}x{image.height} image at "
                f"{settings['processing_resolution']} px with {settings['ensemble_size']} ensemble member(s).",
                "Lower --processing-resolution, use fewer --ensemble-size members, or --dtype fp16.",
            ) from None

        clock = time.perf_counter()
        members = unpad(members, padding)  # [E, 1, h, w] in the U-Net's target space
        if config.target_space == "depth":
            members = align.depth_to_disparity_normalized(members, config.depth_range_ratio)
        member_valid = F.interpolate(valid.float(), size=members.shape[-2:], mode="nearest")[0, 0] > 0.5
        ensembled, spread = align.ensemble_affine_invariant(members[:, 0], member_valid, options.ensemble_reduction)
        full_size = (image.height, image.width)
        ensembled = F.interpolate(ensembled[None, None], size=full_size, mode="bilinear", align_corners=False)
        if not refiner.uses_conditioning_channels:
            # A training-free U-Net's output is in its own affine frame: bring it back to the base's layout.
            ensembled = align.align_to(ensembled, normalized, valid)
        # Back to the base's frame. Where the 2%/98% normalisation clipped the base, add back what was clipped,
        # so the nearest and farthest pixels keep the base's range instead of a flat plateau.
        clipped_excess = disparity - align.denormalize_from_unit_range(normalized, low, high)
        refined = align.denormalize_from_unit_range(ensembled, low, high) + torch.where(valid, clipped_excess, 0.0)
        refined = torch.where(valid, refined, torch.nan)[0, 0].numpy().astype(np.float32)
        uncertainty = None
        if settings["ensemble_size"] > 1:
            spread = F.interpolate(spread[None, None], size=full_size, mode="bilinear", align_corners=False)
            uncertainty = (spread * (high - low) / 2.0)[0, 0].numpy().astype(np.float32)
        timings["ensemble"] = time.perf_counter() - clock
        if on_progress:
            on_progress("ensemble", 1, 1)
        return refined, uncertainty, timings, settings


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
