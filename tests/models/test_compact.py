"""The compact (diffusers-free) refiner components compute what diffusers computes, from the same folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from betterdepth_engine.models import compact
from betterdepth_engine.models.compact.ddim import CompactDDIM
from betterdepth_engine.models.default_base import SmallDepthNet
from betterdepth_engine.models.refiner import DepthRefiner
from betterdepth_engine.models.tiny import build_tiny_refiner, tiny_scheduler_config

REPO = Path(__file__).resolve().parents[2]
SHIPPED_REFINER = REPO / "betterdepth_engine" / "weights" / "refiner"
TOLERANCE = 1e-5  # float32; the two run the same operations, some in another association order


def _both(folder: Path) -> tuple[DepthRefiner, DepthRefiner]:
    compact_refiner = DepthRefiner.from_pretrained(folder, dtype=torch.float32, inference_only=True)
    diffusers_refiner = DepthRefiner.from_pretrained(folder, dtype=torch.float32)
    assert type(compact_refiner.unet).__module__.startswith("betterdepth_engine.models.compact")
    assert type(diffusers_refiner.unet).__module__.startswith("diffusers")
    return compact_refiner, diffusers_refiner


def _assert_same_modules(compact_refiner: DepthRefiner, diffusers_refiner: DepthRefiner, latent_size: tuple[int, int]):
    torch.manual_seed(0)
    channels = compact_refiner.unet.config.in_channels
    sample = torch.randn(2, channels, *latent_size)
    prompt = compact_refiner.empty_prompt_embedding.expand(2, -1, -1)
    for timestep in (999, 421, 0):
        ours = compact_refiner.unet(sample, torch.tensor(timestep), encoder_hidden_states=prompt)[0]
        theirs = diffusers_refiner.unet(sample, torch.tensor(timestep), encoder_hidden_states=prompt).sample
        assert (ours - theirs).abs().max() < TOLERANCE * max(1.0, theirs.abs().max())
    factor = compact_refiner.downscale_factor
    pixels = torch.rand(2, 3, latent_size[0] * factor, latent_size[1] * factor) * 2 - 1
    assert torch.allclose(compact_refiner.encode(pixels), diffusers_refiner.encode(pixels), atol=TOLERANCE)
    latent = torch.randn(1, 4, *latent_size)
    assert torch.allclose(compact_refiner.decode_depth(latent), diffusers_refiner.decode_depth(latent), atol=TOLERANCE)


@pytest.mark.parametrize("latent_size", [(8, 12), (7, 5)])  # (7, 5): not a multiple of the U-Net's 4
def test_shipped_refiner_components_match_diffusers(latent_size):
    _assert_same_modules(*_both(SHIPPED_REFINER), latent_size)


def test_shipped_refiner_refines_the_same(tmp_path):
    compact_refiner, diffusers_refiner = _both(SHIPPED_REFINER)
    torch.manual_seed(1)
    image, conditioning = torch.rand(1, 3, 64, 96) * 2 - 1, torch.rand(1, 1, 64, 96) * 2 - 1
    for noise_kind, steps, strength in (("zero", 1, 1.0), ("random", 3, 1.0), ("random", 4, 0.5)):
        outputs = [refiner.refine(image, conditioning, 2, steps, strength, [torch.Generator().manual_seed(5)],
                                  noise_kind=noise_kind) for refiner in (compact_refiner, diffusers_refiner)]
        assert torch.allclose(*outputs, atol=1e-4)


def test_other_supported_configurations_match_diffusers(tmp_path):
    """VAE mid-block attention, cross-attention in the first block, linear projections (SD2), two layers per
    block, two transformer layers, one head count per block."""
    from diffusers import UNet2DConditionModel

    refiner = build_tiny_refiner()
    refiner.unet = UNet2DConditionModel(
        sample_size=16, in_channels=12, out_channels=4, layers_per_block=2, block_out_channels=(16, 24, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
        attention_head_dim=[2, 4, 4], transformer_layers_per_block=2, use_linear_projection=True, norm_num_groups=8,
        upcast_attention=True,  # ignored by diffusers' default attention processor, so accepted
    )
    refiner.save_pretrained(tmp_path / "refiner")
    assert compact.unsupported_reason(tmp_path / "refiner", "AutoencoderKL") is None
    _assert_same_modules(*_both(tmp_path / "refiner"), (6, 10))


def test_unsupported_configurations_load_through_diffusers(tmp_path):
    from diffusers import AutoencoderTiny, UNet2DConditionModel

    refiner = build_tiny_refiner()
    settings = {key: value for key, value in refiner.unet.config.items() if not key.startswith("_")}
    refiner.unet = UNet2DConditionModel(**{**settings, "resnet_time_scale_shift": "scale_shift"})
    refiner.save_pretrained(tmp_path / "scale_shift")
    assert compact.unsupported_reason(tmp_path / "scale_shift", "AutoencoderKL") == "resnet_time_scale_shift='scale_shift'"
    loaded = DepthRefiner.from_pretrained(tmp_path / "scale_shift", inference_only=True)
    assert type(loaded.unet).__module__.startswith("diffusers")

    refiner = build_tiny_refiner()
    refiner.vae = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                                  num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1))
    refiner.save_pretrained(tmp_path / "tiny_vae")
    loaded = DepthRefiner.from_pretrained(tmp_path / "tiny_vae", inference_only=True)
    assert type(loaded.vae).__name__ == "AutoencoderTiny"


def test_damaged_weights_are_reported_as_a_damaged_folder(tmp_path):
    from safetensors.torch import load_file, save_file

    build_tiny_refiner(tmp_path / "refiner")
    weights = tmp_path / "refiner" / "unet" / compact.WEIGHTS_FILE
    state = load_file(weights)
    state.pop(next(iter(state)))
    save_file(state, weights)
    from betterdepth_engine.errors import BetterDepthError

    with pytest.raises(BetterDepthError, match="incomplete or damaged"):
        DepthRefiner.from_pretrained(tmp_path / "refiner", inference_only=True)


@pytest.mark.parametrize("overrides", [
    {}, {"rescale_betas_zero_snr": True}, {"prediction_type": "epsilon", "set_alpha_to_one": True},
    {"prediction_type": "sample", "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02},
])
def test_ddim_matches_diffusers(overrides):
    from diffusers import DDIMScheduler

    config = {**tiny_scheduler_config(), **overrides}
    theirs = DDIMScheduler.from_config({**config, "timestep_spacing": "trailing"})
    ours = CompactDDIM(config)
    assert torch.equal(ours.alphas_cumprod, theirs.alphas_cumprod)
    generator = torch.Generator().manual_seed(0)
    for steps in (1, 2, 3, 4, 7, 10):
        ours.set_timesteps(steps)
        theirs.set_timesteps(steps)
        assert torch.equal(ours.timesteps, theirs.timesteps)
        sample = torch.randn(1, 4, 5, 6, generator=generator)
        for timestep in ours.timesteps:
            model_output = torch.randn(1, 4, 5, 6, generator=generator)
            expected = theirs.step(model_output, timestep, sample).prev_sample
            sample_next = ours.step(model_output, timestep, sample)[0]
            assert torch.allclose(sample_next, expected, atol=1e-6, rtol=1e-6)
            sample = expected
        noise = torch.randn(1, 4, 5, 6, generator=generator)
        assert torch.equal(ours.add_noise(sample, noise, ours.timesteps[:1]),
                           theirs.add_noise(sample, noise, theirs.timesteps[:1]))


def test_small_depth_net_round_trips_and_loads_the_shipped_base(tmp_path):
    network = SmallDepthNet(channels=(8, 16), processing_resolution=64)
    network.save_pretrained(tmp_path / "base")
    loaded = SmallDepthNet.from_pretrained(tmp_path / "base")
    assert loaded.config == network.config
    image = torch.rand(1, 3, 32, 48)
    assert torch.equal(loaded(image), network(image))
    half = SmallDepthNet.from_pretrained(tmp_path / "base", dtype=torch.float16)
    assert half.dtype == torch.float16
    # Written by diffusers' ModelMixin before this module stopped using it: same layout, still loads.
    shipped = SmallDepthNet.from_pretrained(REPO / "betterdepth_engine" / "weights" / "base")
    assert shipped.config.channels == (32, 64, 128, 192) and shipped.dtype == torch.float32


def test_estimating_with_the_shipped_models_imports_neither_diffusers_nor_transformers(tmp_path):
    code = (
        "import sys\n"
        "from betterdepth_engine import cli\n"
        f"status = cli.main(['estimate', {str(REPO / 'samples' / 'rocket.jpg')!r}, '-o', {str(tmp_path)!r}, '-q'])\n"
        "print(status, sorted({m.split('.')[0] for m in sys.modules} & {'diffusers', 'transformers', 'accelerate'}))\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                            timeout=120, check=True)
    assert result.stdout.strip() == "0 []"
    assert (tmp_path / "rocket_disparity.npy").exists()
