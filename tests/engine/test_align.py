import numpy as np
import pytest
import torch

from betterdepth_engine import align


def test_fit_scale_shift_recovers_known_affine_and_ignores_masked_pixels():
    source = torch.linspace(-2.0, 5.0, 100).reshape(1, 10, 10)
    target = 3.0 * source - 0.5
    mask = torch.ones_like(source, dtype=torch.bool)
    target[0, 0, :5] = 1000.0  # outliers, masked out below
    mask[0, 0, :5] = False
    scale, shift = align.fit_scale_shift(source, target, mask)
    assert scale.item() == pytest.approx(3.0, abs=1e-5)
    assert shift.item() == pytest.approx(-0.5, abs=1e-5)


def test_fit_scale_shift_is_per_sample_and_handles_constant_source():
    source = torch.stack([torch.arange(6.0), torch.full((6,), 2.0)])
    target = torch.stack([2.0 * torch.arange(6.0) + 1.0, torch.arange(6.0)])
    scale, shift = align.fit_scale_shift(source, target, torch.ones_like(source, dtype=torch.bool))
    assert scale.tolist() == pytest.approx([2.0, 0.0])
    assert shift.tolist() == pytest.approx([1.0, 2.5])  # constant source: the mean of the target


def test_normalization_maps_percentiles_to_unit_range_and_roundtrips():
    values = torch.arange(1000.0).reshape(1, 20, 50)
    valid = torch.ones_like(values, dtype=torch.bool)
    low, high = align.valid_percentiles(values, valid)
    assert low.item() == pytest.approx(0.02 * 999, rel=1e-4)
    assert high.item() == pytest.approx(0.98 * 999, rel=1e-4)
    normalized = align.normalize_to_unit_range(values, low, high)
    assert normalized.min() == -1.0 and normalized.max() == 1.0
    inside = (values >= low) & (values <= high)
    restored = align.denormalize_from_unit_range(normalized, low, high)
    assert torch.allclose(restored[inside], values[inside], atol=1e-3)


def test_percentiles_use_only_valid_pixels():
    values = torch.tensor([[1.0, 2.0, 3.0, 1e6]])
    valid = torch.tensor([[True, True, True, False]])
    low, high = align.valid_percentiles(values, valid, 0.0, 1.0)
    assert (low.item(), high.item()) == (1.0, 3.0)


def test_ensemble_of_affine_copies_is_their_common_frame_hand_computed():
    # Members x and 3x + 2 for x = 0..3; the consensus starts at their mean 2x + 1 = [1, 3, 5, 7]; both members
    # align onto it exactly, so the result is [1, 3, 5, 7] with zero spread.
    x = torch.arange(4.0).reshape(2, 2)
    members = torch.stack([x, 3 * x + 2])
    ensembled, uncertainty = align.ensemble_affine_invariant(members, torch.ones(2, 2, dtype=torch.bool))
    assert ensembled.flatten().tolist() == pytest.approx([1.0, 3.0, 5.0, 7.0], abs=1e-5)
    assert uncertainty.abs().max().item() < 1e-5


def test_ensemble_median_resists_an_outlier_member_and_reports_spread():
    x = torch.linspace(0, 1, 16).reshape(4, 4)
    noise = torch.from_numpy(np.random.default_rng(0).normal(0, 1, (4, 4))).float()
    members = torch.stack([x, x, x + 0.001 * noise, noise])
    valid = torch.ones(4, 4, dtype=torch.bool)
    median, median_spread = align.ensemble_affine_invariant(members, valid, "median")
    mean, mean_spread = align.ensemble_affine_invariant(members, valid, "mean")
    assert torch.corrcoef(torch.stack([median.flatten(), x.flatten()]))[0, 1] > 0.999
    assert mean_spread.mean() > median_spread.mean() > 0
    single, single_spread = align.ensemble_affine_invariant(members[:1], valid)
    assert torch.equal(single, x) and single_spread.abs().max() == 0


def test_disparity_depth_conversion_is_monotone_and_inverts_exactly():
    disparity = torch.linspace(-1, 1, 11)
    depth = align.disparity_to_depth_normalized(disparity, depth_range_ratio=10.0)
    assert depth[0].item() == pytest.approx(1.0) and depth[-1].item() == pytest.approx(-1.0)  # far -> +1, near -> -1
    assert torch.all(depth[1:] < depth[:-1])
    assert torch.allclose(align.depth_to_disparity_normalized(depth, 10.0), disparity, atol=1e-6)


def test_guard_drops_a_faint_texture_and_keeps_a_strong_correction_shrunk():
    plane = torch.linspace(-0.5, 0.5, 40).repeat(30, 1)[None, None]
    ripple = 0.03 * torch.sin(torch.arange(40.0) * 2.1)
    assert torch.equal(align.guard_correction(plane + ripple, plane, threshold=0.04, radius=-1), plane)
    strong = plane.clone()
    strong[..., 10, 10] += 0.25
    guarded = align.guard_correction(strong, plane, threshold=0.04, radius=-1)
    assert guarded[..., 10, 10] - plane[..., 10, 10] == pytest.approx(0.21)
    assert torch.equal(align.guard_correction(strong, plane, threshold=0.0, radius=-1), strong)  # off


def test_guard_lets_a_ramp_become_a_step_but_clamps_the_overshoot():
    # The base: a blurred step (a ramp from -0.5 to 0.5 over 8 pixels). The refiner makes it a step, with a halo
    # of 0.2 over- and undershoot on either side (what bends the surfaces next to an edge).
    columns = torch.arange(32.0)
    ramp = ((columns - 12.0) / 8.0).clamp(0.0, 1.0) - 0.5
    step = torch.where(columns < 16, -0.5, 0.5)
    halo = step.clone()
    halo[13:16], halo[16:19] = -0.7, 0.7
    base, refined = ramp.repeat(4, 1)[None, None], halo.repeat(4, 1)[None, None]
    guarded = align.guard_correction(refined, base, threshold=0.0, radius=1)[0, 0, 0]
    assert guarded.min() >= -0.5 and guarded.max() <= 0.5  # no halo: never beyond the base's own values
    assert torch.equal(guarded[:12], step[:12]) and torch.equal(guarded[20:], step[20:])
    # Across the ramp the step is kept as far as the base's local range allows: steeper than the ramp.
    assert (guarded[17] - guarded[14]) > (ramp[17] - ramp[14])


def test_guard_keeps_smoothing_the_bases_own_speckle_towards_its_median():
    # A tilted plane with speckle (the base's own texture); the refiner removes the speckle.
    plane = torch.linspace(-0.5, 0.5, 40).repeat(30, 1)[None, None]
    speckle = torch.zeros_like(plane)
    speckle[..., 5:25:4, 5:35:4] = 0.05
    smoothed = align.guard_correction(plane, plane + speckle, threshold=0.08, radius=1, median_radius=1)
    assert torch.allclose(smoothed, plane, atol=1e-6)  # the median of the speckled plane is the plane
    kept_speckle = align.guard_correction(plane, plane + speckle, threshold=0.08, radius=1)
    assert torch.equal(kept_speckle, plane + speckle)  # without it, a change this small is dropped
    # A new texture on a clean plane is still dropped: the median of a plane is the plane itself.
    ripple = 0.05 * torch.sin(torch.arange(40.0) * 2.1)
    assert torch.allclose(align.guard_correction(plane + ripple, plane, 0.08, 1, median_radius=1), plane, atol=1e-6)
