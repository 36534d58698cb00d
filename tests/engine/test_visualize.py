"""The side-by-side picture: labelled panels and a colour bar that says which colour is near."""

from __future__ import annotations

import numpy as np

from betterdepth_engine import visualize
from betterdepth_engine.images import LoadedImage


def test_near_is_red_and_far_is_blue_as_the_colour_bar_shows():
    near, far = visualize.colorize_disparity(np.array([[1.0, 0.0]]), (0.0, 1.0))[0]
    assert near[0] > near[2] and far[2] > far[0]  # larger disparity = nearer = red
    bar = visualize.colour_bar(100, 16)
    middle = bar.shape[1] // 2
    np.testing.assert_array_equal(bar[16, middle], near)  # first bar row, under the "near" label
    np.testing.assert_array_equal(bar[16 + 99, middle], far)  # last bar row, over the "far" label
    assert (bar[:16] < 128).any() and (bar[-16:] < 128).any()  # the two labels are drawn


def test_side_by_side_labels_every_panel_and_ends_with_the_colour_bar():
    rng = np.random.default_rng(0)
    image = LoadedImage(rgb=rng.integers(0, 256, (60, 80, 3), dtype=np.uint8))
    disparity = rng.random((60, 80)).astype(np.float32)
    normals = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    picture = visualize.side_by_side(image, disparity, disparity, normals, panel_height=96)
    label_height, panel_width = 16, 128
    bar = visualize.colour_bar(96, label_height)
    assert picture.shape == (96 + 2 * label_height, 4 * (panel_width + 4) + bar.shape[1], 3)
    np.testing.assert_array_equal(picture[:, -bar.shape[1]:], bar)
    for index in range(4):
        left = index * (panel_width + 4)
        assert (picture[:label_height, left:left + panel_width] < 128).any(), f"panel {index} has no label"
