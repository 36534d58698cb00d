"""The add-on turns photos exactly as the engine does (PIL's exif_transpose), for all eight EXIF orientations."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from betterdepth_engine.images import load_image
from blender_addon.core.orientation import orient, orientation_from_notes
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
    assert orientation_from_notes(loaded.notes) == orientation
