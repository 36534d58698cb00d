"""The base-model interface: every base model returns affine-invariant disparity at input resolution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from betterdepth_engine.images import LoadedImage


@dataclass
class BasePrediction:
    """A base model's output for one image.

    `disparity` is affine-invariant disparity (larger = nearer, unknown scale and shift), float32, H x W at the
    input image's resolution. `valid_mask` is True where the disparity means something (False for
    missing/invalid values in a file; models that predict everywhere return all True).
    """

    disparity: np.ndarray
    valid_mask: np.ndarray

    def __post_init__(self):
        if self.disparity.ndim != 2 or self.disparity.shape != self.valid_mask.shape:
            raise ValueError(
                f"disparity {self.disparity.shape} and valid_mask {self.valid_mask.shape} must be equal 2-D shapes"
            )


class BaseDepthModel(Protocol):
    """What the pipeline needs from a base model."""

    name: str  # what to record in result metadata (hub id, folder or 'files:<dir>')

    def predict(self, image: LoadedImage) -> BasePrediction: ...
