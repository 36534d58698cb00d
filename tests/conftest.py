"""Shared fixtures: tiny real models (diffusers/transformers architectures, random weights) built once per session."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_refiner_dir(tmp_path_factory):
    from betterdepth_engine.models.tiny import build_tiny_refiner

    folder = tmp_path_factory.mktemp("tiny_refiner")
    build_tiny_refiner(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory):
    from betterdepth_engine.models.tiny import build_tiny_base

    folder = tmp_path_factory.mktemp("tiny_base")
    build_tiny_base(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_marigold_dir(tmp_path_factory):
    from betterdepth_engine.models.tiny import build_tiny_marigold

    return build_tiny_marigold(tmp_path_factory.mktemp("tiny_marigold"))


@pytest.fixture(scope="session")
def tiny_stable_diffusion_dir(tmp_path_factory):
    from betterdepth_engine.models.tiny import build_tiny_stable_diffusion

    return build_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture
def photo_path(tmp_path):
    """A small real-looking RGB JPEG with structure (a crop of a shipped sample), odd-sized on purpose."""
    from pathlib import Path

    sample = Path(__file__).resolve().parent.parent / "samples" / "coffee.jpg"
    path = tmp_path / "photo.jpg"
    Image.open(sample).convert("RGB").resize((75, 50)).save(path, quality=95)
    return path


def random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
