import pytest
import torch

from betterdepth_engine.train import objectives


def test_pre_alignment_recovers_the_target_frame():
    target = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)
    base = 7.0 * target + 3.0
    valid = torch.ones_like(target, dtype=torch.bool)
    assert torch.allclose(objectives.pre_align(base, target, valid), target, atol=1e-5)


def test_patch_mask_keeps_patches_within_eta_rms():
    # Two 8x8 patches: errors of 0.05 everywhere (kept at eta 0.1) and 0.2 everywhere (dropped).
    target = torch.zeros(1, 1, 8, 16)
    conditioning = torch.cat([torch.full((1, 1, 8, 8), 0.05), torch.full((1, 1, 8, 8), 0.2)], dim=-1)
    valid = torch.ones_like(target, dtype=torch.bool)
    keep = objectives.patch_keep_mask(conditioning, target, valid, patch_size=8, eta=0.1)
    assert keep.shape == (1, 1, 1, 2) and keep.flatten().tolist() == [True, False]
    # ||c - d||_2 <= w * eta is the same as RMS <= eta: a patch at exactly eta is kept.
    boundary = torch.full((1, 1, 8, 8), 0.1)
    assert objectives.patch_keep_mask(boundary, torch.zeros(1, 1, 8, 8), valid[..., :8], 8, 0.1).item()


def test_patch_mask_ignores_invalid_pixels_and_drops_empty_patches():
    target = torch.zeros(1, 1, 8, 16)
    conditioning = torch.zeros(1, 1, 8, 16)
    conditioning[..., 0, 0] = 5.0  # a huge error, but on an invalid pixel
    valid = torch.ones_like(target, dtype=torch.bool)
    valid[..., 0, 0] = False
    valid[..., 8:] = False  # the second patch has no valid pixel at all
    keep = objectives.patch_keep_mask(conditioning, target, valid, 8, 0.1)
    assert keep.flatten().tolist() == [True, False]


def test_latent_valid_mask_needs_every_pixel_valid():
    valid = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    valid[0, 0, 3, 3] = False
    mask = objectives.latent_valid_mask(valid, 8)
    assert mask.flatten().tolist() == [False, True, True, True]


def test_v_prediction_target_matches_diffusers_scheduler():
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              prediction_type="v_prediction", rescale_betas_zero_snr=True)
    latent, noise = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    timesteps = torch.tensor([0, 500, 999])
    noisy, velocity = objectives.v_prediction_target(latent, noise, scheduler.alphas_cumprod[timesteps])
    assert torch.allclose(noisy, scheduler.add_noise(latent, noise, timesteps), atol=1e-6)
    assert torch.allclose(velocity, scheduler.get_velocity(latent, noise, timesteps), atol=1e-6)
    assert torch.allclose(velocity[2], -latent[2], atol=1e-6)  # zero terminal SNR: v = -z at t = 999


def test_clean_latent_estimate_inverts_the_v_prediction_target():
    alphas_cumprod = torch.tensor([0.9, 0.3, 0.0])
    latent, noise = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    noisy, velocity = objectives.v_prediction_target(latent, noise, alphas_cumprod)
    assert torch.allclose(objectives.clean_latent_estimate(noisy, velocity, alphas_cumprod), latent, atol=1e-6)


def test_gradient_l1_ignores_an_offset_and_measures_a_ripple():
    """A constant offset costs nothing; a ±a checkerboard ripple on a flat target costs 2a per neighbour
    pair; pairs with a pixel outside the mask do not count."""
    target = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)
    mask = torch.ones_like(target, dtype=torch.bool)
    assert objectives.gradient_l1(target + 0.3, target, mask).item() == pytest.approx(0.0, abs=1e-6)
    rows, columns = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    ripple = 0.05 * (1 - 2 * ((rows + columns) % 2)).float().reshape(1, 1, 8, 8)
    assert objectives.gradient_l1(target + ripple, target, mask).item() == pytest.approx(0.1)
    left_half = mask.clone()
    left_half[..., 4:] = False
    bumped = target.clone()
    bumped[..., 6] += 1.0  # outside the mask, and so are its pairs
    assert objectives.gradient_l1(bumped, target, left_half).item() == pytest.approx(0.0, abs=1e-6)
    empty = torch.zeros_like(mask)
    prediction = target.clone().requires_grad_(True)
    objectives.gradient_l1(prediction, target, empty).backward()
    assert torch.isfinite(prediction.grad).all()


def test_masked_mse_averages_kept_elements_and_survives_an_empty_mask():
    prediction = torch.zeros(1, 4, 1, 2, requires_grad=True)
    target = torch.tensor([[[[1.0, 3.0]]] * 4]).reshape(1, 4, 1, 2)
    mask = torch.tensor([[[[True, False]]]])
    assert objectives.masked_mse(prediction, target, mask).item() == pytest.approx(1.0)
    empty = objectives.masked_mse(prediction, target, torch.zeros_like(mask))
    empty.backward()
    assert empty.item() == 0.0 and torch.isfinite(prediction.grad).all()


def test_scale_shift_invariant_loss_is_zero_for_affine_copies_and_positive_otherwise():
    target = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    valid = torch.ones_like(target, dtype=torch.bool)
    assert objectives.scale_shift_invariant_loss(4 * target - 1, target, valid).item() == pytest.approx(0, abs=1e-5)
    assert objectives.scale_shift_invariant_loss(target.flip(-1), target, valid).item() > 0.1


def test_sky_counts_as_far_when_asked():
    depth = torch.tensor([[[[1.0, 2.0, 0.0, 4.0]]]])
    valid = depth > 0
    target, supervised = objectives.normalized_target_disparity(depth, valid, sky_as_far=True)
    assert supervised.all() and target[0, 0, 0, 2] == -1.0 and target[0, 0, 0, 0] == 1.0
    _, supervised = objectives.normalized_target_disparity(depth, valid, sky_as_far=False)
    assert supervised.flatten().tolist() == [True, True, False, True]
