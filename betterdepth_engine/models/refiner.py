"""The BetterDepth refiner: a conditional latent-diffusion model that adds detail to a base disparity.

A refiner is a folder in diffusers layout: `vae/`, `unet/`, `scheduler/`, plus `betterdepth_refiner.json`
(the `RefinerConfig`) and `empty_prompt_embedding.safetensors` (the constant text conditioning, so no text
encoder is needed at run time). Two kinds of U-Net are supported, told apart by their input channels:

- 3 x latent channels, [image latent, conditioning latent, noisy latent]: the trained BetterDepth refiner.
  Denoising starts from pure noise (strength 1) and the output stays in the conditioning's frame.
- 2 x latent channels, [image latent, noisy latent]: a Marigold U-Net used training-free. Denoising starts from
  the noised conditioning latent at an intermediate timestep (strength < 1, as in image-to-image), and the
  output is aligned back to the base's layout by least squares.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.models.hub import resolve_model_folder

REFINER_CONFIG_NAME = "betterdepth_refiner.json"
EMPTY_PROMPT_FILE = "empty_prompt_embedding.safetensors"
REFINER_FORMAT = "betterdepth-refiner"


@dataclass
class RefinerConfig:
    """Settings stored with a refiner; the defaults a user gets when they pass no option."""

    # What the U-Net denoises: "disparity" (BetterDepth) or "depth" (Marigold weights, affine-invariant depth).
    target_space: str = "disparity"
    # True: the U-Net denoises the correction to the conditioning (z_target - z_conditioning) rather than the
    # target latent itself, so copying the base costs it nothing (a lever named in method.md §7).
    predicts_correction: bool = False
    default_denoising_steps: int = 2
    default_ensemble_size: int = 1
    default_processing_resolution: int = 768
    # 1.0 starts from pure noise; below 1 starts from the conditioning noised to that fraction of the schedule.
    default_strength: float = 1.0
    # The starting noise: "random" (Gaussian, seeded: a sample, as the paper draws it) or "zero" (its mean: one
    # deterministic estimate; a 1-step sample from random noise carries that noise's texture into flat areas,
    # docs/results.md "Refiner that does no harm"; ensemble members are then identical).
    default_noise: str = "random"
    # The guard on the refined map (align.guard_correction): corrections below guard_threshold ([-1, 1] units)
    # dropped, except a move towards the base's median over (2 guard_median_radius + 1)^2 pixels; then each pixel
    # clamped to the base's range over a (2 guard_radius + 1)^2 window. Off (0, -1, 0) by default, as in the
    # paper; the shipped refiner turns it on (docs/results.md section 9).
    guard_threshold: float = 0.0
    guard_radius: int = -1
    guard_median_radius: int = 0
    # far/near depth ratio assumed when converting disparity to depth for a depth-space U-Net.
    depth_range_ratio: float = 10.0
    low_percentile: float = 0.02
    high_percentile: float = 0.98
    vae_class: str = "AutoencoderKL"
    description: str = ""

    @property
    def has_guard(self) -> bool:
        return self.guard_threshold > 0.0 or self.guard_radius >= 0

    @classmethod
    def from_json_file(cls, path: Path) -> RefinerConfig:
        data = json.loads(path.read_text())
        if data.pop("format", None) != REFINER_FORMAT:
            raise BetterDepthError(
                BetterDepthError.BAD_MODEL,
                f"'{path}' is not a BetterDepth refiner config.",
                "Pass a folder written by `DepthRefiner.save_pretrained` or `betterdepth train`.",
            )
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def to_json_file(self, path: Path) -> None:
        path.write_text(json.dumps({"format": REFINER_FORMAT, **dataclasses.asdict(self)}, indent=2) + "\n")


def vae_downscale_factor(vae) -> int:
    """Pixels per latent pixel, from the VAE's config (AutoencoderKL or AutoencoderTiny); never assumed to be 8."""
    block_channels = vae.config.get("block_out_channels") or vae.config.get("encoder_block_out_channels")
    return 2 ** (len(block_channels) - 1)


def trailing_ddim_scheduler(scheduler_config: dict, zero_terminal_snr: bool | None = None):
    """A DDIM scheduler with "trailing" spacing: with 1 step it starts at t = 999, never on a mid-range t."""
    from diffusers import DDIMScheduler

    overrides = {"timestep_spacing": "trailing"}
    if zero_terminal_snr is not None:
        overrides["rescale_betas_zero_snr"] = zero_terminal_snr
    return DDIMScheduler.from_config({**scheduler_config, **overrides})


def _empty_prompt_embedding(folder: Path) -> torch.Tensor:
    """Encode the empty prompt once with a Stable Diffusion folder's own text encoder ([1, tokens, dim])."""
    from transformers import AutoTokenizer, CLIPTextModel

    tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder")
    token_ids = tokenizer("", padding="do_not_pad", truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        return text_encoder(token_ids)[0].float()


def _load_vae(folder: Path, class_name: str, dtype: torch.dtype | None = None):
    import diffusers

    if class_name not in ("AutoencoderKL", "AutoencoderTiny"):
        raise BetterDepthError(
            BetterDepthError.BAD_MODEL, f"Unsupported VAE class '{class_name}'.", "Use AutoencoderKL or AutoencoderTiny."
        )
    return getattr(diffusers, class_name).from_pretrained(folder / "vae", torch_dtype=dtype)


def replace_conv_in(unet, weight: torch.Tensor) -> None:
    """Swap the U-Net's first convolution for one with weight's input channels (bias kept)."""
    old = unet.conv_in
    new = torch.nn.Conv2d(weight.shape[1], old.out_channels, old.kernel_size, old.stride, old.padding)
    with torch.no_grad():
        new.weight.copy_(weight)
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=weight.shape[1])


class DepthRefiner:
    """VAE + U-Net + scheduler + the empty-prompt embedding; small named steps: encode, denoise, decode."""

    def __init__(self, vae, unet, scheduler, empty_prompt_embedding: torch.Tensor, config: RefinerConfig):
        self.vae = vae.eval().requires_grad_(False)
        self.unet = unet.eval()
        self.scheduler = scheduler
        self.empty_prompt_embedding = empty_prompt_embedding
        self.config = config
        latent_channels = vae.config.latent_channels
        if unet.config.in_channels not in (2 * latent_channels, 3 * latent_channels):
            raise BetterDepthError(
                BetterDepthError.BAD_MODEL,
                f"The U-Net takes {unet.config.in_channels} input channels; a refiner needs "
                f"{3 * latent_channels} (image, conditioning, noisy) or {2 * latent_channels} (Marigold).",
                "Create refiners with DepthRefiner.from_stable_diffusion or from_marigold.",
            )

    # ----- properties derived from the components -------------------------------------------------------------
    @property
    def uses_conditioning_channels(self) -> bool:
        """True for a BetterDepth U-Net (conditioning concatenated); False for a Marigold U-Net used training-free."""
        return self.unet.config.in_channels == 3 * self.vae.config.latent_channels

    @property
    def downscale_factor(self) -> int:
        return vae_downscale_factor(self.vae)

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> DepthRefiner:
        # diffusers warns whenever `dtype` is passed at all, so pass only what changes.
        changes = {"device": device} if device is not None else {}
        if dtype is not None and dtype != self.dtype:
            changes["dtype"] = dtype
        for module in (self.vae, self.unet):
            module.to(**changes)
        self.empty_prompt_embedding = self.empty_prompt_embedding.to(device=self.device, dtype=self.dtype)
        return self

    # ----- loading and saving -----------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, source: str | Path, dtype: torch.dtype | None = None,
                        inference_only: bool = False) -> DepthRefiner:
        """Load a BetterDepth refiner folder or hub id; a Marigold folder or hub id is loaded training-free.
        `dtype`: load the weights in this dtype (default: as stored; the shipped weights are fp16).
        `inference_only`: components that only run (never train or save) load as the plain-torch modules of
        `models/compact` where they implement the folder's configuration, without importing diffusers."""
        from safetensors.torch import load_file

        from betterdepth_engine.models import compact

        folder = resolve_model_folder(source, "refiner")
        if not (folder / REFINER_CONFIG_NAME).exists():
            if _is_marigold_folder(folder):
                return cls.from_marigold(folder).to(dtype=dtype)
            raise BetterDepthError(
                BetterDepthError.BAD_MODEL,
                f"'{source}' is not a refiner: it has no {REFINER_CONFIG_NAME}.",
                "Pass a folder made by `betterdepth train` (or save_pretrained), or a Marigold depth checkpoint.",
            )
        config = RefinerConfig.from_json_file(folder / REFINER_CONFIG_NAME)
        try:
            if inference_only and compact.unsupported_reason(folder, config.vae_class) is None:
                vae, unet, scheduler = compact.load_components(folder, dtype)
            else:
                from diffusers import UNet2DConditionModel

                vae = _load_vae(folder, config.vae_class, dtype)
                unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=dtype)
                scheduler = trailing_ddim_scheduler(
                    json.loads((folder / "scheduler" / "scheduler_config.json").read_text()))
            embedding = load_file(folder / EMPTY_PROMPT_FILE)["empty_prompt_embedding"]
        except (OSError, KeyError, ValueError, RuntimeError) as error:
            raise BetterDepthError(
                BetterDepthError.BAD_MODEL, f"Refiner folder '{source}' is incomplete or damaged: {error}",
                "Re-create it, or copy it again in full.",
            ) from None
        return cls(vae, unet, scheduler, embedding, config)

    def save_pretrained(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.vae.save_pretrained(folder / "vae")
        self.unet.save_pretrained(folder / "unet")
        self.scheduler.save_pretrained(folder / "scheduler")
        save_file({"empty_prompt_embedding": self.empty_prompt_embedding.detach().float().cpu().contiguous()},
                  folder / EMPTY_PROMPT_FILE)
        self.config.vae_class = type(self.vae).__name__
        self.config.to_json_file(folder / REFINER_CONFIG_NAME)

    @classmethod
    def from_marigold(cls, source: str | Path) -> DepthRefiner:
        """A Marigold depth checkpoint as a training-free refiner (its U-Net starts from the noised base)."""
        from diffusers import UNet2DConditionModel

        folder = resolve_model_folder(source, "refiner")
        if not _is_marigold_folder(folder):
            raise BetterDepthError(
                BetterDepthError.BAD_MODEL, f"'{source}' is not a Marigold depth checkpoint.",
                "Its model_index.json must name MarigoldDepthPipeline.",
            )
        index = json.loads((folder / "model_index.json").read_text())
        scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        config = RefinerConfig(
            target_space="depth",
            default_denoising_steps=4,
            default_processing_resolution=index.get("default_processing_resolution") or 768,
            default_strength=0.5,
            vae_class=index.get("vae", [None, "AutoencoderKL"])[1],
            description=f"Marigold checkpoint '{source}' used training-free",
        )
        return cls(
            _load_vae(folder, config.vae_class),
            UNet2DConditionModel.from_pretrained(folder / "unet"),
            trailing_ddim_scheduler(scheduler_config),
            _empty_prompt_embedding(folder),
            config,
        )

    @classmethod
    def from_stable_diffusion(cls, source: str | Path, zero_terminal_snr: bool = True) -> DepthRefiner:
        """A new, untrained BetterDepth refiner from a Stable Diffusion 2 (or Marigold) checkpoint, for training.

        conv_in is inflated to [image, conditioning, noisy] channels. From SD2's 4-channel kernel: repeated three
        times and divided by 3 (so the first layer's response to equal inputs is unchanged). From Marigold's
        [image, noisy] kernel: the conditioning part starts at zero, so the new model is exactly Marigold at
        step 0 and learns to use the conditioning.
        """
        from diffusers import UNet2DConditionModel

        folder = resolve_model_folder(source, "refiner")
        unet = UNet2DConditionModel.from_pretrained(folder / "unet")
        index = json.loads((folder / "model_index.json").read_text()) if (folder / "model_index.json").exists() else {}
        vae = _load_vae(folder, index.get("vae", [None, "AutoencoderKL"])[1])
        latent_channels = vae.config.latent_channels
        weight = unet.conv_in.weight.detach()
        if weight.shape[1] == latent_channels:
            replace_conv_in(unet, weight.repeat(1, 3, 1, 1) / 3.0)
        elif weight.shape[1] == 2 * latent_channels:
            image_part, noisy_part = weight.split(latent_channels, dim=1)
            replace_conv_in(unet, torch.cat([image_part, torch.zeros_like(image_part), noisy_part], dim=1))
        else:
            raise BetterDepthError(
                BetterDepthError.BAD_MODEL,
                f"Cannot inflate a U-Net with {weight.shape[1]} input channels.",
                "Start from a Stable Diffusion 2 or Marigold checkpoint.",
            )
        scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        scheduler_config["prediction_type"] = "v_prediction"
        config = RefinerConfig(vae_class=type(vae).__name__, description=f"initialised from '{source}'")
        return cls(vae, unet, trailing_ddim_scheduler(scheduler_config, zero_terminal_snr),
                   _empty_prompt_embedding(folder), config)

    # ----- the named steps ------------------------------------------------------------------------------------
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image-like tensor in [-1, 1], [B, 3, H, W] -> scaled latent (the posterior mean, as in Marigold)."""
        encoded = self.vae.encode(pixels.to(self.device, self.dtype), return_dict=False)[0]
        # AutoencoderKL gives a distribution (its mean is used); AutoencoderTiny and the compact VAE a tensor.
        latent = encoded if isinstance(encoded, torch.Tensor) else encoded.mean
        return latent * self.vae.config.scaling_factor

    def decode_depth(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent -> depth or disparity in [-1, 1], [B, 1, H, W]: the mean of the 3 decoded channels, clipped."""
        decoded = self.vae.decode(latent / self.vae.config.scaling_factor, return_dict=False)[0]
        return decoded.float().mean(dim=1, keepdim=True).clamp(-1.0, 1.0)

    def timesteps(self, num_steps: int, strength: float) -> torch.Tensor:
        """The trailing schedule of `num_steps`, of which the last `strength` fraction is run (image-to-image)."""
        if num_steps < 1:
            raise BetterDepthError(BetterDepthError.BAD_INPUT, "Denoising steps must be at least 1.", "Use --steps 1 or more.")
        if not 0.0 < strength <= 1.0:
            raise BetterDepthError(BetterDepthError.BAD_INPUT, f"Strength must be in (0, 1], not {strength}.",
                                   "1 starts from pure noise; 0.3-0.7 keeps more of the base.")
        self.scheduler.set_timesteps(num_steps, device=self.device)
        steps_to_run = max(1, round(num_steps * strength))
        return self.scheduler.timesteps[num_steps - steps_to_run:]

    def denoise(
        self,
        image_latent: torch.Tensor,
        conditioning_latent: torch.Tensor,
        noise: torch.Tensor,
        num_steps: int,
        strength: float,
        on_step: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """Run DDIM from noise (strength 1) or from the noised conditioning (strength < 1) to a clean latent.

        A correction refiner denoises the correction from noise (or from the noised zero correction) and returns
        the conditioning latent plus that correction."""
        timesteps = self.timesteps(num_steps, strength)
        if strength >= 1.0:
            latent = noise * self.scheduler.init_noise_sigma
        else:
            # What is denoised: the target latent, or its correction to the conditioning (which starts at zero).
            start = torch.zeros_like(conditioning_latent) if self.config.predicts_correction else conditioning_latent
            latent = self.scheduler.add_noise(start, noise, timesteps[:1])
        prompt = self.empty_prompt_embedding.expand(latent.shape[0], -1, -1)
        for index, timestep in enumerate(timesteps):
            parts = [image_latent, conditioning_latent, latent] if self.uses_conditioning_channels else [image_latent, latent]
            model_output = self.unet(torch.cat(parts, dim=1), timestep, encoder_hidden_states=prompt,
                                     return_dict=False)[0]
            latent = self.scheduler.step(model_output, timestep, latent, return_dict=False)[0]
            if on_step is not None:
                on_step(index + 1, len(timesteps))
        return latent + conditioning_latent if self.config.predicts_correction else latent

    @torch.no_grad()
    def refine(
        self,
        image: torch.Tensor,
        conditioning: torch.Tensor,
        ensemble_size: int,
        num_steps: int,
        strength: float,
        generators: list[torch.Generator],
        on_step: Callable[[int, int], None] | None = None,
        timings: dict[str, float] | None = None,
        noise_kind: str = "random",
    ) -> torch.Tensor:
        """Refine B images: image [B, 3, H, W] in [-1, 1]; conditioning [B, 1, H, W] in [-1, 1] in the U-Net's
        target space; H and W multiples of `downscale_factor`; one noise generator per image. Returns the
        members [B * E, 1, H, W] in [-1, 1], image-major.

        Images and conditionings are encoded once, in one VAE call, and shared by every step and member.
        `timings`, if given, receives seconds for "encode", "step_1".."step_N" and "decode". `noise_kind` "zero"
        starts from the noise's mean instead of a draw (RefinerConfig.default_noise).
        """
        clock = _StageClock(self.device, timings)
        image_latent, conditioning_latent = self.encode(
            torch.cat([image, conditioning.repeat(1, 3, 1, 1)])).chunk(2)
        clock.lap("encode")

        def after_step(done: int, total: int) -> None:
            clock.lap(f"step_{done}")
            if on_step is not None:
                on_step(done, total)

        # Noise is drawn on the CPU, per image, so a seed gives the same result on every device and in any batch.
        noise = torch.cat([torch.randn((ensemble_size, *image_latent.shape[1:]), generator=generator)
                           for generator in generators])
        if noise_kind == "zero":
            noise = torch.zeros_like(noise)
        latent = self.denoise(
            image_latent.repeat_interleave(ensemble_size, dim=0),
            conditioning_latent.repeat_interleave(ensemble_size, dim=0),
            noise.to(self.device, self.dtype),
            num_steps,
            strength,
            after_step,
        )
        members = self.decode_depth(latent)
        clock.lap("decode")
        return members


class _StageClock:
    """Wall-clock seconds between laps, waiting for queued GPU work so each lap is charged to its own stage."""

    def __init__(self, device: torch.device, timings: dict[str, float] | None):
        self.timings = timings
        self.synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        if self.timings is None:
            return
        self.synchronize()
        now = time.perf_counter()
        self.timings[stage] = now - self.last
        self.last = now


def _is_marigold_folder(folder: Path) -> bool:
    index = folder / "model_index.json"
    return index.exists() and json.loads(index.read_text()).get("_class_name") == "MarigoldDepthPipeline"
