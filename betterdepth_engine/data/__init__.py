"""Synthetic training data: procedural scenes ray-cast with exact depth (see docs/synthetic_data.md)."""

from betterdepth_engine.data.synthetic import (
    VALIDATION_SEED_START,
    SyntheticDepthDataset,
    SyntheticSample,
    generate_scene,
    seed_for,
)

__all__ = ["VALIDATION_SEED_START", "SyntheticDepthDataset", "SyntheticSample", "generate_scene", "seed_for"]
