"""Synthetic scenes: sample format, determinism, analytic depth, sky, thin structures, seed streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from betterdepth_engine.data import (
    VALIDATION_SEED_START,
    SyntheticDepthDataset,
    generate_scene,
    generate_scenes,
    render_scene,
    seed_for,
)
from betterdepth_engine.data.camera import Camera, focal_from_fov, look_at
from betterdepth_engine.data.primitives import Cylinder, Plane, Sphere
from betterdepth_engine.data.scenes import SCENE_KINDS, Scene, random_lighting, rotation_z_to
from betterdepth_engine.data.textures import random_material

HEIGHT, WIDTH = 48, 64  # not square, to catch swapped axes


def hand_built(primitives: list, camera: Camera, max_depth_m: float = 50.0) -> Scene:
    rng = np.random.default_rng(0)
    materials = [random_material(rng) for _ in range(3)]
    return Scene("test", camera, random_lighting(rng, outdoor=True), max_depth_m, materials, primitives)


def camera_along_z(size: int, fov_deg: float = 60.0, position=(0.0, 0.0, 0.0), target=(0.0, 0.0, 1.0)) -> Camera:
    position = np.asarray(position, np.float64)
    return Camera(look_at(position, target), position, size, size, focal_from_fov(size, np.deg2rad(fov_deg)))


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_sample_shapes_types_and_ranges(kind):
    sample = generate_scene(3, HEIGHT, WIDTH, kind=kind)
    assert sample.image.shape == (3, HEIGHT, WIDTH) and sample.image.dtype == torch.float32
    assert sample.depth.shape == (HEIGHT, WIDTH) and sample.depth.dtype == torch.float32
    assert sample.valid_mask.shape == (HEIGHT, WIDTH) and sample.valid_mask.dtype == torch.bool
    assert 0.0 <= sample.image.min() and sample.image.max() <= 1.0 and sample.image.std() > 0.02
    assert sample.valid_mask.any()
    assert (sample.depth[sample.valid_mask] > 0).all() and (sample.depth[~sample.valid_mask] == 0).all()
    assert torch.isfinite(sample.depth).all()
    assert sample.kind == kind
    # Horizontal field of view between 35 and 90 degrees.
    fov = 2 * np.degrees(np.arctan(0.5 * WIDTH / sample.focal_px))
    assert 35.0 <= fov <= 90.0


def test_same_seed_same_scene_different_seed_different_scene():
    first, again = generate_scene(11, HEIGHT, WIDTH), generate_scene(11, HEIGHT, WIDTH)
    other = generate_scene(12, HEIGHT, WIDTH)
    assert torch.equal(first.image, again.image) and torch.equal(first.depth, again.depth)
    assert torch.equal(first.valid_mask, again.valid_mask) and first.focal_px == again.focal_px
    assert not torch.equal(first.depth, other.depth) and not torch.equal(first.image, other.image)


def test_a_batch_renders_the_same_scenes_as_one_at_a_time():
    batch = generate_scenes([5, 6, 7], HEIGHT, WIDTH)
    for seed, sample in zip([5, 6, 7], batch):
        alone = generate_scene(seed, HEIGHT, WIDTH)
        assert torch.equal(sample.valid_mask, alone.valid_mask)
        torch.testing.assert_close(sample.depth, alone.depth, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sample.image, alone.image, rtol=1e-4, atol=1e-4)


def test_camera_facing_a_plane_sees_constant_depth():
    scene = hand_built([Plane(np.array([0.0, 0.0, -1.0]), -4.0, material=0)], camera_along_z(32))
    sample = render_scene(scene)
    assert sample.valid_mask.all()
    torch.testing.assert_close(sample.depth, torch.full((32, 32), 4.0), rtol=1e-5, atol=1e-5)


def test_sphere_depth_at_its_centre_pixel_and_sky_around_it():
    scene = hand_built([Sphere(np.array([0.0, 0.0, 6.0]), 1.0, material=1)], camera_along_z(33, fov_deg=40))
    sample = render_scene(scene)
    assert sample.depth[16, 16].item() == pytest.approx(5.0, rel=1e-5)
    assert not sample.valid_mask[0, 0] and sample.depth[0, 0] == 0  # sky: invalid, depth 0
    # The silhouette: pixels whose ray passes within the radius are valid, the others are not.
    rows, cols = torch.meshgrid(torch.arange(33) - 16.0, torch.arange(33) - 16.0, indexing="ij")
    angle_to_centre = torch.atan(torch.sqrt(rows**2 + cols**2) / sample.focal_px)
    inside = angle_to_centre < np.arcsin(1.0 / 6.0) - 0.01
    outside = angle_to_centre > np.arcsin(1.0 / 6.0) + 0.01
    assert sample.valid_mask[inside].all() and not sample.valid_mask[outside].any()


def test_sky_above_the_horizon_is_invalid():
    camera = camera_along_z(32, position=(0.0, 1.5, 0.0), target=(0.0, 1.5, 1.0))
    sample = render_scene(hand_built([Plane(np.array([0.0, 1.0, 0.0]), 0.0, material=0)], camera, max_depth_m=100.0))
    assert not sample.valid_mask[:16].any() and sample.valid_mask[-4:].all()
    # The ground's depth along the optical axis: camera height * focal / pixel rows below the horizon.
    row = 31
    assert sample.depth[row, 5].item() == pytest.approx(1.5 * sample.focal_px / (row + 0.5 - 16), rel=1e-4)


def _thin_structure_pixels(depth: torch.Tensor, valid: torch.Tensor, reach: int = 2) -> torch.Tensor:
    """Pixels at least 20% nearer than the pixels `reach` away on both sides, along rows or columns:
    foreground structures at most 2 * reach - 1 pixels wide (legs, wires, bars)."""
    far = torch.where(valid, depth, torch.full_like(depth, 1e6))
    thin = torch.zeros_like(valid)
    for axis in (0, 1):
        before, after = torch.roll(far, reach, axis), torch.roll(far, -reach, axis)
        thin |= valid & (depth < 0.8 * torch.minimum(before, after))
    thin[:reach], thin[-reach:], thin[:, :reach], thin[:, -reach:] = False, False, False, False
    return thin


def test_a_thin_wire_is_drawn_at_its_depth():
    wire = Cylinder(np.array([0.0, 0.0, 3.0]), rotation_z_to([1.0, 0.2, 0.0]), 0.03, 5.0, material=2)  # ~1 px
    wall = Plane(np.array([0.0, 0.0, -1.0]), -6.0, material=0)
    sample = render_scene(hand_built([wire, wall], camera_along_z(64)))
    thin = _thin_structure_pixels(sample.depth, sample.valid_mask)
    assert thin.sum() >= 40  # the wire crosses the image
    assert thin.sum(0).max() <= 3  # and is at most a few pixels thick
    assert sample.depth[thin].max().item() < 3.2


def test_generated_scenes_contain_thin_structures():
    samples = generate_scenes(range(20, 28), 96, 96, kind="room")
    samples += generate_scenes(range(20, 28), 96, 96, kind="outdoor")
    with_thin = [bool(_thin_structure_pixels(s.depth, s.valid_mask).sum() >= 5) for s in samples]
    assert sum(with_thin) >= 4


def test_train_and_validation_seed_streams_are_disjoint():
    assert seed_for("train", 0) == 0 and seed_for("val", 0) == VALIDATION_SEED_START
    assert seed_for("train", VALIDATION_SEED_START - 1) < seed_for("val", 0)
    with pytest.raises(ValueError):
        seed_for("train", VALIDATION_SEED_START)
    with pytest.raises(ValueError):
        seed_for("test", 0)
    train = SyntheticDepthDataset("train", 16, 16, batch_size=2, num_batches=2)
    val = SyntheticDepthDataset("val", 16, 16, batch_size=2, num_batches=2)
    train_seeds = torch.cat([batch["seed"] for batch in train]).tolist()
    val_seeds = torch.cat([batch["seed"] for batch in val]).tolist()
    assert train_seeds == [0, 1, 2, 3]
    assert val_seeds == [VALIDATION_SEED_START + i for i in range(4)]


def test_dataset_batches_and_resuming():
    dataset = SyntheticDepthDataset("train", HEIGHT, WIDTH, batch_size=3, start_index=6, num_batches=1)
    (batch,) = list(dataset)
    assert batch["image"].shape == (3, 3, HEIGHT, WIDTH)
    assert batch["depth"].shape == (3, HEIGHT, WIDTH) and batch["valid_mask"].dtype == torch.bool
    assert batch["focal_px"].shape == (3,) and batch["seed"].tolist() == [6, 7, 8]
    assert torch.equal(batch["depth"][1], generate_scene(7, HEIGHT, WIDTH).depth)


def test_rendering_on_cpu_leaves_the_thread_setting_as_it_was():
    threads = torch.get_num_threads()
    generate_scene(1, 16, 16)
    assert torch.get_num_threads() == threads


def test_texture_copy_scenes_are_flat_faces_with_high_contrast_texture():
    """Every valid ground-truth normal, lifted with the scene's own camera, is one of the room's six face
    normals (no relief anywhere), while the image carries strong edges inside those faces."""
    from betterdepth_engine.data.scenes import random_scene
    from betterdepth_engine.eval import metrics
    from betterdepth_engine.recon.camera import intrinsics_from_focal_px

    for seed in (seed_for("val", 0), seed_for("val", 3)):
        scene = random_scene(np.random.default_rng(seed), 240, 320, "texture_copy")
        sample = render_scene(scene, seed)
        depth, valid = sample.depth.numpy().astype(np.float64), sample.valid_mask.numpy()
        camera = intrinsics_from_focal_px(320, 240, sample.focal_px)
        keep = metrics.continuous_quads(depth, valid, camera.focal_px)
        normals = metrics.surface_normals(depth, camera, keep)
        # Pixels whose 3 x 3 neighbourhood lies on one face (creases between faces are continuous in depth).
        planar = metrics.planar_pixels(normals, metrics.smooth_pixels(keep), window_px=3)
        assert valid.all() and planar.mean() > 0.6
        faces_in_camera = scene.camera.world_from_camera.T @ np.concatenate([np.eye(3), -np.eye(3)], axis=1)
        angles = metrics.angles_deg(faces_in_camera[:, :, None], normals[:, planar][:, None, :])  # 6 x N
        assert angles.min(axis=0).max() < 0.05
        gray = sample.image.mean(0).numpy()
        edges = (np.abs(np.diff(gray, axis=1))[:-1] > 0.1) & planar[:-1, :-1]
        assert edges.mean() > 0.005  # texture edges inside flat faces
