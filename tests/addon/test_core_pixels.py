"""Pixel arrays: photos turned exactly as the engine turns them (all eight EXIF orientations), sRGB encoding."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from betterdepth_engine.images import load_image
from blender_addon.core.pixels import orient, srgb_from_linear_rgba
from tests.conftest import random_rgb


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_the_engine(tmp_path, orientation):
    pixels = random_rgb(9, 12, seed=orientation)  # the engine refuses images under 8 px a side
    path = tmp_path / "photo.png"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif)
    loaded = load_image(path)  # the engine's own loader
    assert np.array_equal(orient(pixels, orientation), loaded.rgb)
    assert np.array_equal(loaded.rgb, np.asarray(ImageOps.exif_transpose(Image.open(path))))
    assert loaded.exif_orientation == orientation  # what the engine reports in meta.json


def test_srgb_encoding_matches_the_standard_curve():
    linear = np.float32([[0.0, 0.002, 0.18, 0.5], [1.0, 2.0, -0.1, 1.0]])
    encoded = srgb_from_linear_rgba(linear)
    assert np.allclose(encoded[0, :3], [0.0, 0.02584, 0.46135], atol=1e-4)  # 18 % grey is ~46 % in sRGB
    assert np.allclose(encoded[1, :3], [1.0, 1.0, 0.0]) and encoded[0, 3] == 0.5  # clipped; alpha linear
