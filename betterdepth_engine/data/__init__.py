"""Synthetic training data: procedural scenes ray-cast with exact depth, and a simulated blurry base model.

See docs/synthetic_data.md.
"""

from betterdepth_engine.data.degrade import DEGRADATIONS, degrade_depth, degrade_disparity
from betterdepth_engine.data.synthetic import (
    VALIDATION_SEED_START,
    SyntheticDepthDataset,
    SyntheticSample,
    fill_banks,
    generate_scene,
    generate_scenes,
    render_scene,
    seed_for,
)

__all__ = [
    "DEGRADATIONS",
    "VALIDATION_SEED_START",
    "SyntheticDepthDataset",
    "SyntheticSample",
    "degrade_depth",
    "degrade_disparity",
    "fill_banks",
    "generate_scene",
    "generate_scenes",
    "render_scene",
    "seed_for",
]
