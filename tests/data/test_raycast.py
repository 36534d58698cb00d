"""Ray casting against each primitive: depths and hits agree with the analytic geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from betterdepth_engine.data.camera import Camera, focal_from_fov, look_at
from betterdepth_engine.data.primitives import (
    Box,
    Cylinder,
    HeightMap,
    Plane,
    ReliefPanel,
    Room,
    Sphere,
    Terrain,
    Torus,
    WireGrid,
)
from betterdepth_engine.data.raycast import View, cast, group_by_class
from betterdepth_engine.data.scenes import rotation_z_to

IDENTITY = np.eye(3)
TURNED_ABOUT_Z = np.array([[np.cos(0.7), -np.sin(0.7), 0.0], [np.sin(0.7), np.cos(0.7), 0.0], [0.0, 0.0, 1.0]])


def looking_down_z(size: int, focal_px: float = 0.0, metres_per_px: float = 0.0, z_m: float = 0.0) -> Camera:
    """A camera at (0, 0, z_m) looking along world +Z (pinhole if focal_px, else orthographic)."""
    position = np.array([0.0, 0.0, z_m])
    return Camera(look_at(position, position + [0, 0, 1]), position, size, size, focal_px, metres_per_px)


def cast_one(camera: Camera, primitives: list):
    return cast([View(camera, group_by_class(primitives))], "cpu")[0]


def test_pinhole_facing_a_plane_sees_constant_depth_and_distance_grows_off_axis():
    distance = 3.0
    camera = looking_down_z(33, focal_px=focal_from_fov(33, np.deg2rad(60)))
    hits = cast_one(camera, [Plane(np.array([0.0, 0.0, 1.0]), distance, material=0)])
    depth = hits.t * (hits.directions * torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1)).sum(0)
    assert torch.allclose(depth, torch.full_like(depth, distance), rtol=1e-5)
    assert hits.t[16, 16] == pytest.approx(distance, rel=1e-6)  # the central ray is the optical axis
    assert hits.t[0, 0] > hits.t[16, 16]


def test_sphere_depth_on_the_axis_is_distance_minus_radius():
    camera = looking_down_z(31, focal_px=focal_from_fov(31, np.deg2rad(50)))
    hits = cast_one(camera, [Sphere(np.array([0.0, 0.0, 5.0]), 1.5, material=0)])
    assert hits.t[15, 15].item() == pytest.approx(3.5, rel=1e-5)
    assert torch.isinf(hits.t[0, 0])  # the corner ray passes beside the sphere
    assert hits.normal[:, 15, 15].tolist() == pytest.approx([0.0, 0.0, -1.0], abs=1e-4)  # facing the camera


@pytest.mark.parametrize(
    ("primitive", "expected_t"),
    [
        (Box(np.array([0.0, 0.0, 4.0]), TURNED_ABOUT_Z, np.array([1.0, 1.0, 0.5]), 0), 4.0 - 0.5),
        (Cylinder(np.array([0.0, 0.0, 4.0]), rotation_z_to([1, 0, 0]), 0.25, 2.0, 0), 4.0 - 0.25),
        (Cylinder(np.array([0.0, 0.0, 4.0]), IDENTITY, 0.25, 2.0, 0), 4.0 - 2.0),  # seen end-on: the cap
        (Torus(np.array([0.0, 0.3, 4.0]), IDENTITY, 0.3, 0.1, 0), 4.0 - 0.1),  # the tube's nearest point
        (WireGrid(np.array([0.0, 0.0, 4.0]), IDENTITY, (1.0, 1.0), (0.5, 0.0), 0.01, 0), 4.0),  # on a bar
    ],
    ids=["box", "cylinder-side", "cylinder-cap", "torus", "wire-grid"],
)
def test_orthographic_central_ray_hits_at_the_analytic_distance(primitive, expected_t):
    hits = cast_one(looking_down_z(9, metres_per_px=0.001), [primitive])
    assert hits.t[4, 4].item() == pytest.approx(expected_t, abs=2e-4)
    assert hits.material[4, 4].item() == 0


def test_wire_grid_is_hit_only_on_its_bars():
    grid = WireGrid(np.array([0.0, 0.0, 2.0]), IDENTITY, (1.0, 1.0), (0.2, 0.2), 0.01, 0)
    hits = cast_one(looking_down_z(200, metres_per_px=0.01), [grid])  # 2 m wide view of a 2 m grid
    coverage = torch.isfinite(hits.t).float().mean().item()
    # Bars 2 cm wide every 20 cm in both directions cover 1 - 0.9^2 = 19% of the card.
    assert coverage == pytest.approx(0.19, abs=0.03)


def test_room_is_seen_from_inside_with_floor_walls_and_ceiling_materials():
    room = Room(np.array([0.0, 1.5, 0.0]), np.array([2.0, 1.5, 3.0]), 0, 1, 2)
    position = np.array([0.0, 1.5, 0.0])
    camera = Camera(look_at(position, [0.0, 1.5, 1.0]), position, 41, 41, focal_from_fov(41, np.deg2rad(90)))
    hits = cast_one(camera, [room])
    assert torch.isfinite(hits.t).all()
    assert hits.t[20, 20].item() == pytest.approx(3.0, rel=1e-5)  # the far wall, straight ahead
    assert (hits.material[0, 20].item(), hits.material[20, 20].item(), hits.material[40, 20].item()) == (2, 0, 1)


def test_open_top_room_shows_sky_above():
    room = Room(np.array([0.0, 1.5, 0.0]), np.array([2.0, 1.5, 3.0]), 0, 1, 2, open_top=True)
    position = np.array([0.0, 1.5, 0.0])
    camera = Camera(look_at(position, [0.0, 3.0, 0.5]), position, 21, 21, focal_from_fov(21, np.deg2rad(60)))
    hits = cast_one(camera, [room])
    assert torch.isinf(hits.t[10, 10])


def test_relief_panel_is_flush_on_its_frame_and_carved_inside():
    height = np.zeros((32, 32), np.float32)
    height[8:24, 8:24] = -1.0  # a square pocket carved to the full depth
    panel = ReliefPanel(np.array([0.0, 0.0, 3.0]), rotation_z_to([0, 0, -1]), np.array([0.5, 0.5, 0.1]), 0.05,
                        HeightMap(height, np.zeros((2, 32, 32), np.float32)), 0)
    hits = cast_one(looking_down_z(64, metres_per_px=1.0 / 64), [panel])
    front = 3.0 - 0.1
    assert hits.t[2, 2].item() == pytest.approx(front, abs=1e-4)  # on the flat frame
    assert hits.t[32, 32].item() == pytest.approx(front + 0.05, abs=1e-3)  # at the bottom of the pocket


def test_terrain_height_under_a_vertical_ray():
    terrain = Terrain(0.5, np.array([1.0, 0.5, 0.0, 0.0]), np.array([[0.3, 0.1], [0.0, 0.7], [1.0, 0.0], [0.0, 1.0]]),
                      np.array([0.2, 1.0, 0.0, 0.0]), 100.0, 0)
    position = np.array([2.0, 20.0, 3.0])
    rotation = look_at(position, position + [0, -1, 0])
    hits = cast_one(Camera(rotation, position, 5, 5, metres_per_px=1e-3), [terrain])
    ground = 0.5 + 1.0 * np.sin(0.3 * 2 + 0.1 * 3 + 0.2) + 0.5 * np.sin(0.7 * 3 + 1.0)
    assert hits.t[2, 2].item() == pytest.approx(20.0 - ground, abs=1e-3)


def test_nearest_of_overlapping_primitives_wins_and_windows_cull_nothing_visible():
    camera = looking_down_z(41, focal_px=focal_from_fov(41, np.deg2rad(60)))
    primitives = [
        Plane(np.array([0.0, 0.0, 1.0]), 10.0, material=0),
        Box(np.array([0.0, 0.0, 6.0]), IDENTITY, np.array([2.0, 2.0, 1.0]), 1),
        Sphere(np.array([0.0, 0.0, 3.0]), 0.5, 2),
        Sphere(np.array([0.0, 0.0, -3.0]), 0.5, 3),  # behind the camera
    ]
    hits = cast_one(camera, primitives)
    assert hits.material[20, 20].item() == 2 and hits.t[20, 20].item() == pytest.approx(2.5, rel=1e-4)
    assert hits.material[20, 8].item() == 1 and hits.material[0, 0].item() == 0
    assert (hits.material != 3).all()
