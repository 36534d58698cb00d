import json

import numpy as np
import pytest
import torch

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.models.refiner import DepthRefiner, RefinerConfig, vae_downscale_factor


@pytest.fixture
def refiner(tiny_refiner_dir):
    return DepthRefiner.from_pretrained(tiny_refiner_dir)


def _inputs(height=32, width=48, seed=0):
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, height, width, generator=generator) * 2 - 1
    conditioning = torch.rand(1, 1, height, width, generator=generator) * 2 - 1
    return image, conditioning


@pytest.mark.parametrize(("steps", "strength", "expected"), [
    (1, 1.0, [999]),  # trailing: one step starts on pure noise at t = 999, never mid-schedule
    (2, 1.0, [999, 499]),
    (4, 1.0, [999, 749, 499, 249]),
    (2, 0.5, [499]),  # image-to-image: only the last half of the schedule
])
def test_trailing_timesteps(refiner, steps, strength, expected):
    assert refiner.timesteps(steps, strength).tolist() == expected


def test_refiner_config_and_components_roundtrip(refiner, tmp_path):
    assert refiner.uses_conditioning_channels and refiner.unet.config.in_channels == 12
    assert refiner.scheduler.config.prediction_type == "v_prediction"
    assert refiner.scheduler.config.timestep_spacing == "trailing"
    refiner.save_pretrained(tmp_path / "copy")
    again = DepthRefiner.from_pretrained(tmp_path / "copy")
    image, conditioning = _inputs()
    first = refiner.refine(image, conditioning, 2, 2, 1.0, [torch.Generator().manual_seed(3)])
    second = again.refine(image, conditioning, 2, 2, 1.0, [torch.Generator().manual_seed(3)])
    assert torch.equal(first, second)
    assert json.loads((tmp_path / "copy" / "betterdepth_refiner.json").read_text())["format"] == "betterdepth-refiner"


def test_refine_shapes_range_and_seed_determinism(refiner):
    image, conditioning = _inputs()
    members = refiner.refine(image, conditioning, 3, 2, 1.0, [torch.Generator().manual_seed(0)])
    assert members.shape == (3, 1, 32, 48)
    assert members.min() >= -1 and members.max() <= 1
    again = refiner.refine(image, conditioning, 3, 2, 1.0, [torch.Generator().manual_seed(0)])
    other = refiner.refine(image, conditioning, 3, 2, 1.0, [torch.Generator().manual_seed(1)])
    assert torch.equal(members, again)
    assert not torch.equal(members, other)
    assert not torch.equal(members[0], members[1])  # members are independent samples


def test_image_and_conditioning_are_encoded_once_per_image(refiner):
    calls = []
    real_encode = refiner.vae.encode
    refiner.vae.encode = lambda pixels, **keywords: calls.append(pixels.shape) or real_encode(pixels, **keywords)
    image, conditioning = _inputs()
    refiner.refine(image, conditioning, 4, 3, 1.0, [torch.Generator().manual_seed(0)])
    assert calls == [(2, 3, 32, 48)]  # image + conditioning in one batch; 4 members x 3 steps reuse it


def test_unet_input_is_image_then_conditioning_then_noisy_latent(refiner):
    image, conditioning = _inputs()
    seen = []
    handle = refiner.unet.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    with torch.no_grad():
        refiner.refine(image, conditioning, 1, 1, 1.0, [torch.Generator().manual_seed(0)])
        image_latent = refiner.encode(image)
        conditioning_latent = refiner.encode(conditioning.repeat(1, 3, 1, 1))
    handle.remove()
    unet_input = seen[0]
    assert unet_input.shape[1] == 12
    assert torch.allclose(unet_input[:, :4], image_latent, atol=1e-5)  # batched vs single conv: rounding only
    assert torch.allclose(unet_input[:, 4:8], conditioning_latent, atol=1e-5)
    noise = torch.randn((1, 4, 4, 6), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(unet_input[:, 8:], noise)  # pure noise at t = 999 with strength 1


@pytest.mark.parametrize(("steps", "strength"), [(1, 1.0), (4, 1.0), (4, 0.5)])
def test_a_correction_refiner_adds_its_correction_to_the_conditioning(refiner, tmp_path, steps, strength):
    """predicts_correction: the U-Net denoises a correction to the conditioning latent. Without noise, a U-Net
    that predicts v = 0 denoises a zero correction, so the result is the conditioning latent itself, at any
    number of steps and strength; a refiner of the target with the same U-Net would not."""
    image, conditioning = _inputs()
    with torch.no_grad():
        image_latent, conditioning_latent = refiner.encode(image), refiner.encode(conditioning.repeat(1, 3, 1, 1))
    no_noise = torch.zeros_like(conditioning_latent)
    refiner.config.predicts_correction = True
    refiner.save_pretrained(tmp_path / "correction")
    refiner = DepthRefiner.from_pretrained(tmp_path / "correction")
    assert refiner.config.predicts_correction
    with torch.no_grad():
        corrected = refiner.denoise(image_latent, conditioning_latent, no_noise, steps, strength)
        torch.nn.init.zeros_(refiner.unet.conv_out.weight)
        torch.nn.init.zeros_(refiner.unet.conv_out.bias)
        uncorrected = refiner.denoise(image_latent, conditioning_latent, no_noise, steps, strength)
        refiner.config.predicts_correction = False
        target_refiner_result = refiner.denoise(image_latent, conditioning_latent, no_noise, steps, strength)
    assert not torch.allclose(corrected, conditioning_latent, atol=1e-2)
    assert torch.equal(uncorrected, conditioning_latent)
    assert not torch.allclose(target_refiner_result, conditioning_latent, atol=1e-2)


def test_downscale_factor_comes_from_the_vae_config():
    from diffusers import AutoencoderKL, AutoencoderTiny

    three_blocks = AutoencoderKL(block_out_channels=(8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 3,
                                 up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=4, latent_channels=4)
    assert vae_downscale_factor(three_blocks) == 4
    assert vae_downscale_factor(AutoencoderTiny()) == 8


def test_inflating_stable_diffusion_keeps_the_first_layer_response(tiny_stable_diffusion_dir):
    from diffusers import UNet2DConditionModel

    original = UNet2DConditionModel.from_pretrained(tiny_stable_diffusion_dir / "unet")
    refiner = DepthRefiner.from_stable_diffusion(tiny_stable_diffusion_dir)
    assert refiner.unet.config.in_channels == 12
    assert refiner.scheduler.config.rescale_betas_zero_snr and refiner.scheduler.config.prediction_type == "v_prediction"
    latent = torch.randn(1, 4, 8, 8)
    with torch.no_grad():  # three equal copies through the kernel / 3 == the original kernel once
        assert torch.allclose(refiner.unet.conv_in(latent.repeat(1, 3, 1, 1)), original.conv_in(latent), atol=1e-5)


def test_inflating_marigold_zeroes_the_conditioning_kernel(tiny_marigold_dir):
    from diffusers import UNet2DConditionModel

    original = UNet2DConditionModel.from_pretrained(tiny_marigold_dir / "unet").conv_in.weight
    inflated = DepthRefiner.from_stable_diffusion(tiny_marigold_dir).unet.conv_in.weight
    assert torch.equal(inflated[:, :4], original[:, :4])
    assert torch.count_nonzero(inflated[:, 4:8]) == 0
    assert torch.equal(inflated[:, 8:], original[:, 4:])


def test_training_free_marigold_at_strength_one_matches_diffusers_pipeline(tiny_marigold_dir):
    """Our denoising loop on Marigold weights, from pure noise, reproduces MarigoldDepthPipeline exactly."""
    from diffusers import MarigoldDepthPipeline

    rgb = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    pipeline = MarigoldDepthPipeline.from_pretrained(tiny_marigold_dir)
    pipeline.set_progress_bar_config(disable=True)
    expected = pipeline(rgb, num_inference_steps=2, processing_resolution=56, match_input_resolution=False,
                        generator=torch.Generator().manual_seed(7), output_type="pt").prediction  # [1,1,40,56] in [0,1]
    refiner = DepthRefiner.from_marigold(tiny_marigold_dir)
    assert not refiner.uses_conditioning_channels and refiner.config.target_space == "depth"
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    unused_conditioning = torch.zeros(1, 1, 40, 56)
    members = refiner.refine(image, unused_conditioning, 1, 2, 1.0, [torch.Generator().manual_seed(7)])
    assert torch.allclose((members + 1) / 2, expected, atol=1e-4)


def test_bad_refiner_folders_give_clear_errors(tmp_path, tiny_base_dir):
    with pytest.raises(BetterDepthError) as missing:
        DepthRefiner.from_pretrained(tmp_path / "nowhere")
    assert missing.value.code == "MODEL_NOT_FOUND"
    with pytest.raises(BetterDepthError) as wrong_kind:
        DepthRefiner.from_pretrained(tiny_base_dir)
    assert wrong_kind.value.code == "BAD_MODEL"
    broken = tmp_path / "broken"
    broken.mkdir()
    RefinerConfig().to_json_file(broken / "betterdepth_refiner.json")
    with pytest.raises(BetterDepthError) as incomplete:
        DepthRefiner.from_pretrained(broken)
    assert incomplete.value.code == "BAD_MODEL" and "incomplete" in incomplete.value.message


def test_hub_id_offline_fails_fast_with_a_hint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BetterDepthError) as error:
        DepthRefiner.from_pretrained("nobody/no-such-refiner")
    assert error.value.code == "MODEL_NOT_FOUND" and "--local-dir" in error.value.hint
