"""A real engine service on 127.0.0.1 (a subprocess started through the client library), and test images."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from betterdepth_engine.client import EngineClient, launch_managed_engine

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
# No network in tests: an unknown model name must fail at once instead of asking the hub.
ENGINE_ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
# A job long enough to watch and cancel: the shipped refiner takes ~40 ms per step at 384 px on 2 cores.
SLOW = {"steps": 400}


def start_engine(state_dir: Path, allow_dir: Path | None = None, *extra_args, parent_pid: int | None = None):
    return launch_managed_engine(sys.executable, state_dir, allow_dirs=[allow_dir] if allow_dir else [],
                                 extra_args=extra_args, env=ENGINE_ENV, parent_pid=parent_pid)


def sample_crop(path: Path, index: int, size=(96, 64)) -> None:
    """A distinct small photo per index (a different window of a shipped sample), so mix-ups show."""
    image = Image.open(SAMPLES / "coffee.jpg").convert("RGB")
    left, top = (index * 37) % (image.width - size[0]), (index * 23) % (image.height - size[1])
    image.crop((left, top, left + size[0], top + size[1])).save(path)


@pytest.fixture(scope="session")
def images_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("allowed")
    for index in range(20):
        sample_crop(folder / f"crop{index:02d}.png", index)
    (folder / "not_an_image.png").write_bytes(b"this is text, not a PNG")
    return folder


@pytest.fixture(scope="session")
def engine(tmp_path_factory, images_dir):
    """One shared engine for the tests that do not need a special configuration."""
    managed = start_engine(tmp_path_factory.mktemp("state"), images_dir, "--max-upload-mb", "5")
    yield managed
    managed.stop()


@pytest.fixture
def client(engine) -> EngineClient:
    return engine.client()


def npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
