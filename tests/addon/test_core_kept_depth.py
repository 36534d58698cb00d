"""The kept depth's pixel encoding (core/kept_depth.py): exact, invalid pixels kept, damage recognised."""

from __future__ import annotations

import numpy as np

from blender_addon.core.kept_depth import digest, from_pixels, to_pixels


def test_pixels_round_trip_exactly_with_invalid_pixels_and_rows_bottom_up():
    disparity = np.random.default_rng(0).random((5, 7)).astype(np.float32) * 3
    disparity[1, 2] = np.nan
    pixels = to_pixels(disparity)
    assert pixels.dtype == np.float32 and pixels.shape == (5 * 7 * 4,)
    assert pixels[0] == disparity[4, 0]  # Blender's first pixel is the bottom-left one
    assert not np.isnan(pixels).any()
    back = from_pixels(pixels, 7, 5)
    assert np.array_equal(back, disparity, equal_nan=True) and digest(back) == digest(disparity)


def test_the_digest_changes_with_a_value_the_validity_or_the_shape():
    disparity = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    changed, invalid = disparity.copy(), disparity.copy()
    changed[2, 3] += 1e-6
    invalid[0, 0] = np.nan
    digests = {digest(disparity), digest(changed), digest(invalid), digest(disparity.reshape(4, 3))}
    assert len(digests) == 4
