"""The simulated blurry base: smooth, affinely perturbed disparity that still follows the ground truth."""

from __future__ import annotations

import pytest
import torch

from betterdepth_engine.data import DEGRADATIONS, degrade_disparity, generate_scene


@pytest.fixture(scope="module")
def scene():
    sample = generate_scene(4, 96, 128, kind="room")
    disparity = torch.where(sample.valid_mask, 1.0 / sample.depth.clamp(min=1e-6), 0.0)
    return disparity, sample.valid_mask


def detail(image: torch.Tensor) -> float:
    """Mean absolute Laplacian of an image rescaled to [0, 1]: how much fine structure it has."""
    unit = (image - image.min()) / (image.max() - image.min())
    laplacian = 4 * unit[1:-1, 1:-1] - unit[:-2, 1:-1] - unit[2:, 1:-1] - unit[1:-1, :-2] - unit[1:-1, 2:]
    return laplacian.abs().mean().item()


def affine_fit_residual(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """RMS residual of the least-squares scale-and-shift fit of prediction to target, relative to target's spread."""
    x, y = prediction[mask].double(), target[mask].double()
    design = torch.stack([x, torch.ones_like(x)], dim=1)
    solution = torch.linalg.lstsq(design, y[:, None]).solution
    return ((design @ solution)[:, 0] - y).pow(2).mean().sqrt().item() / y.std().item()


@pytest.mark.parametrize("kind", sorted(DEGRADATIONS))
def test_degraded_disparity_is_smooth_affine_perturbed_and_close_after_alignment(scene, kind):
    disparity, valid = scene
    degraded = degrade_disparity(disparity, valid, torch.Generator().manual_seed(0), kind=kind)
    assert degraded.shape == disparity.shape and degraded.dtype == disparity.dtype
    assert torch.isfinite(degraded).all()
    assert detail(degraded) < 0.5 * detail(torch.where(valid, disparity, 0.0))
    assert affine_fit_residual(degraded, disparity, valid) < 0.35


def test_blurry_loses_more_than_mild(scene):
    disparity, valid = scene
    generator = torch.Generator().manual_seed(1)
    residual = {kind: affine_fit_residual(degrade_disparity(disparity, valid, generator, kind), disparity, valid)
                for kind in ("mild", "blurry")}
    assert residual["mild"] < residual["blurry"]


def test_same_generator_state_same_result_and_batches(scene):
    disparity, valid = scene
    first = degrade_disparity(disparity, valid, torch.Generator().manual_seed(5))
    again = degrade_disparity(disparity, valid, torch.Generator().manual_seed(5))
    other = degrade_disparity(disparity, valid, torch.Generator().manual_seed(6))
    assert torch.equal(first, again) and not torch.equal(first, other)
    batch = degrade_disparity(torch.stack([disparity, disparity]), torch.stack([valid, valid]),
                              torch.Generator().manual_seed(5))
    assert batch.shape == (2, *disparity.shape)
    assert torch.equal(batch[0], first) and not torch.equal(batch[1], first)


def test_unknown_kind_is_refused(scene):
    disparity, valid = scene
    with pytest.raises(ValueError, match="blurry"):
        degrade_disparity(disparity, valid, torch.Generator(), kind="sharp")


def test_varied_spans_almost_exact_to_over_smoothed(scene):
    disparity, valid = scene
    generator = torch.Generator().manual_seed(2)
    residuals = [affine_fit_residual(degrade_disparity(disparity, valid, generator, "varied"), disparity, valid)
                 for _ in range(16)]
    blurry = affine_fit_residual(degrade_disparity(disparity, valid, torch.Generator().manual_seed(2)), disparity,
                                 valid)
    mild = affine_fit_residual(degrade_disparity(disparity, valid, torch.Generator().manual_seed(2), "mild"),
                               disparity, valid)
    assert min(residuals) < mild and max(residuals) > 0.8 * blurry
