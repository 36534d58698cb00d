"""Known distance (core/known_distance.py): the factor, the picked pixel, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.known_distance import distance_factor, pixels_of_uvs, vertex_at_pixel


def test_the_factor_puts_the_point_at_the_distance_along_its_ray_or_the_axis():
    point = np.array([3.0, 0.0, -4.0])  # Blender camera frame: -Z forward
    assert np.linalg.norm(point * distance_factor(point, 10.0, "RAY")) == pytest.approx(10.0)
    assert abs((point * distance_factor(point, 2.0, "AXIS"))[2]) == pytest.approx(2.0)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive length"):
            distance_factor(point, bad, "RAY")
    with pytest.raises(ValueError, match="at the camera"):
        distance_factor(np.zeros(3), 1.0, "RAY")


def test_pixels_and_the_vertex_at_a_pixel():
    width, height = 4, 3
    columns, rows = np.meshgrid(np.arange(width), np.arange(height))
    uvs = np.stack(((columns.ravel() + 0.5) / width, 1 - (rows.ravel() + 0.5) / height), axis=1)
    assert np.allclose(pixels_of_uvs(uvs, width, height), np.stack((columns.ravel(), rows.ravel()), 1))
    assert vertex_at_pixel(uvs, width, height, 2, 1) == 1 * width + 2
    assert vertex_at_pixel(uvs[1:], width, height, 0, 0) == 0  # the nearest when the pixel has no vertex
