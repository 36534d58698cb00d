"""`RefineOptions`: the per-call settings of a refinement, checked when they are made.

Light (no torch), so the CLI and the engine service can check what a user asked for before loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass

from betterdepth_engine.errors import BetterDepthError

# The smallest long side the refiner may work at: 8 latent pixels with the usual 8x autoencoder. Below it the
# result is noise at best (at 7 px a whole photo is one latent pixel).
MIN_PROCESSING_RESOLUTION = 64
# Where denoising starts: a seeded Gaussian draw, or its mean (a deterministic single estimate).
NOISE_KINDS = ("random", "zero")


@dataclass
class RefineOptions:
    """Per-call settings; None means the refiner's own default from its config."""

    denoising_steps: int | None = None
    ensemble_size: int | None = None
    processing_resolution: int | None = None  # long side in pixels; 0 = the input's own resolution
    strength: float | None = None
    noise: str | None = None  # "random" or "zero" (the starting noise's mean: deterministic)
    ensemble_reduction: str = "mean"
    seed: int = 0
    guard: bool = True  # False: the refiner's raw output, without its guard (RefinerConfig.guard_*)

    def __post_init__(self):
        problems = []
        if self.denoising_steps is not None and self.denoising_steps < 1:
            problems.append("denoising steps must be at least 1")
        if self.ensemble_size is not None and self.ensemble_size < 1:
            problems.append("the ensemble size must be at least 1")
        if self.processing_resolution is not None and 0 != self.processing_resolution < MIN_PROCESSING_RESOLUTION:
            problems.append(f"the processing resolution must be 0 (the input's own) or at least "
                            f"{MIN_PROCESSING_RESOLUTION} px, not {self.processing_resolution}")
        if self.strength is not None and not 0.0 < self.strength <= 1.0:
            problems.append(f"strength must be in (0, 1], not {self.strength}")
        if self.noise not in (None, *NOISE_KINDS):
            problems.append(f"the noise must be one of {', '.join(NOISE_KINDS)}, not {self.noise!r}")
        if self.ensemble_reduction not in ("mean", "median"):
            problems.append("the ensemble reduction must be 'mean' or 'median'")
        if problems:
            raise BetterDepthError(BetterDepthError.BAD_INPUT, "Invalid settings: " + "; ".join(problems) + ".",
                                   "See `betterdepth estimate --help` for the accepted values.")
