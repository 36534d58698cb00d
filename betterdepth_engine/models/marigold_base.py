"""Marigold as a base model, through diffusers' own `MarigoldDepthPipeline`.

Marigold predicts affine-invariant *depth* in [0, 1] (0 = near). The base interface wants disparity, so the
depth is read as spanning [1, depth_range_ratio] and inverted; the result is affine-invariant disparity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from betterdepth_engine.align import depth_to_disparity_normalized
from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.images import LoadedImage
from betterdepth_engine.models.base import BasePrediction
from betterdepth_engine.models.hub import resolve_model_folder


def marigold_depth_to_disparity(depth_unit: np.ndarray, depth_range_ratio: float) -> np.ndarray:
    """Marigold's affine depth in [0, 1] -> affine-invariant disparity in [-1, 1] (larger = nearer)."""
    depth_normalized = torch.from_numpy(np.asarray(depth_unit, dtype=np.float32)) * 2.0 - 1.0
    return depth_to_disparity_normalized(depth_normalized, depth_range_ratio).numpy()


class MarigoldBaseModel:
    def __init__(self, pipeline, name: str, num_steps: int | None = None, ensemble_size: int = 1,
                 depth_range_ratio: float = 10.0, seed: int = 0):
        self.pipeline = pipeline
        self.name = name
        self.num_steps = num_steps
        self.ensemble_size = ensemble_size
        self.depth_range_ratio = depth_range_ratio
        self.seed = seed

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, **options) -> MarigoldBaseModel:
        from diffusers import MarigoldDepthPipeline

        folder = resolve_model_folder(folder, "Marigold model")
        try:
            pipeline = MarigoldDepthPipeline.from_pretrained(folder, dtype=dtype).to(device)
        except (OSError, ValueError) as error:
            raise BetterDepthError(
                BetterDepthError.BAD_MODEL, f"Could not load Marigold from '{folder}': {error}",
                "Pass a complete Marigold depth checkpoint folder (model_index.json, vae/, unet/, ...).",
            ) from None
        pipeline.set_progress_bar_config(disable=True)
        return cls(pipeline, str(folder), **options)

    def predict(self, image: LoadedImage) -> BasePrediction:
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        output = self.pipeline(
            image.rgb, num_inference_steps=self.num_steps, ensemble_size=self.ensemble_size,
            generator=generator, output_type="np",
        )
        disparity = marigold_depth_to_disparity(output.prediction[0, :, :, 0], self.depth_range_ratio)
        return BasePrediction(disparity=disparity.astype(np.float32), valid_mask=np.ones(disparity.shape, bool))
