"""Training the BetterDepth refiner with global pre-alignment and local patch masking (method.md §2).

Per step: sample (image, depth); base disparity d̃ (a frozen base model, or a simulated blurry base); the
target d = ground-truth disparity normalised to [-1, 1]; pre-align d̃ onto d by least squares; keep the
w x w patches where they agree within eta; encode image, conditioning and target once (frozen VAE); draw t
and noise; the U-Net sees [z_image, z_conditioning, z_t] and learns v by MSE over the kept latent pixels.
Switches for the paper's ablation: no conditioning, no pre-alignment, no patch mask.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from pathlib import Path

import numpy as np
import torch

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.models.refiner import (
    DepthRefiner, RefinerConfig, replace_conv_in, trailing_ddim_scheduler, vae_downscale_factor,
)
from betterdepth_engine.train import objectives
from betterdepth_engine.train.loop import (
    RunSettings, TrainingLog, checkpoint_if_due, learning_rate_at, prepare_run_folder, random_crops,
    resume, set_learning_rate, training_batches, training_device,
)

# U-Net sizes for training from scratch. "small" is the CPU-sized default; from SD2/Marigold use --init.
UNET_PRESETS = {
    "tiny": dict(block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16, attention_head_dim=4,
                 layers_per_block=1, norm_num_groups=8),
    "small": dict(block_out_channels=(64, 128, 192), layers_per_block=1, cross_attention_dim=64,
                  down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"), attention_head_dim=8,
                  norm_num_groups=32),
}


@dataclasses.dataclass
class RefinerTrainingSettings(RunSettings):
    autoencoder: str = ""  # a trained autoencoder folder (diffusers AutoencoderKL/Tiny), unless --init is given
    init: str = ""  # SD2 or Marigold checkpoint (conv_in inflated, VAE taken from it), or a refiner to fine-tune
    unet_preset: str = "small"
    # "simulated" (= simulated:blurry) or simulated:KIND (degraded ground truth, data/degrade.py), or a base model
    # (folder, alias, hub id)
    base: str = "simulated"
    # Optional: a second base (same forms as `base`) that conditions each batch with probability
    # second_base_share, e.g. a real base's errors and a simulated base's range of sharpness in one run.
    second_base: str = ""
    second_base_share: float = 0.5
    conditioning: bool = True
    pre_alignment: bool = True
    patch_mask: bool = True
    eta: float = 0.1  # per-patch RMS error allowed between aligned base and target, in [-1, 1] units
    patch_size: int = 0  # 0 = the VAE's downscale factor (one patch = one latent pixel)
    # Train the U-Net to denoise the correction to the conditioning instead of the target (models/refiner.py,
    # RefinerConfig.predicts_correction). Starting from a refiner that predicts the target, its output layer is
    # zeroed, so training starts from "return the conditioning".
    predict_correction: bool = False
    zero_terminal_snr: bool = True
    high_timestep_fraction: float = 0.0  # share of samples drawn at t = 999 (1-step inference starts there)
    sky_as_far: bool = True
    ema_decay: float = 0.999
    # Weight of a second loss on the decoded depth: the clean latent the v-prediction implies is decoded and its
    # neighbour differences compared with the target's (objectives.gradient_l1) over the kept patches. The
    # paper's latent MSE does not see that a small latent error decodes to bumps on a flat surface; this does.
    # 0 = the paper's loss alone.
    decoded_gradient_weight: float = 0.0
    learning_rate: float = 1e-4
    crop_size: int = 0  # train on random crops of this size (0 = whole scenes): more scenes per CPU step


def build_refiner(settings: RefinerTrainingSettings) -> DepthRefiner:
    """A refiner to train: a trained BetterDepth refiner to fine-tune (--init), one inflated from SD2/Marigold
    (--init), or a preset U-Net on a trained autoencoder."""
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel

    from betterdepth_engine.models.refiner import REFINER_CONFIG_NAME
    from betterdepth_engine.models.tiny import tiny_scheduler_config

    if settings.init and (Path(settings.init) / REFINER_CONFIG_NAME).exists():
        refiner = DepthRefiner.from_pretrained(settings.init, dtype=torch.float32)
    elif settings.init:
        refiner = DepthRefiner.from_stable_diffusion(settings.init, settings.zero_terminal_snr)
    else:
        if not settings.autoencoder:
            raise BetterDepthError(BetterDepthError.BAD_INPUT, "Training from scratch needs --autoencoder.",
                                   "Train one with `betterdepth train autoencoder`, or pass --init SD2_OR_MARIGOLD.")
        folder = Path(settings.autoencoder)
        config = (folder / "config.json").read_text() if (folder / "config.json").exists() else ""
        vae_class = AutoencoderTiny if "AutoencoderTiny" in config else AutoencoderKL
        vae = vae_class.from_pretrained(folder)
        torch.manual_seed(settings.seed)
        latent = vae.config.latent_channels
        unet = UNet2DConditionModel(in_channels=3 * latent, out_channels=latent, sample_size=settings.height // 8,
                                    **UNET_PRESETS[settings.unet_preset])
        # No text: a fixed random "prompt" that the cross-attention learns to read as a constant.
        embedding = torch.randn(1, 2, unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(0))
        scheduler = trailing_ddim_scheduler(tiny_scheduler_config(), settings.zero_terminal_snr)
        refiner = DepthRefiner(vae, unet, scheduler, embedding, RefinerConfig(vae_class=vae_class.__name__))
    if not settings.conditioning:
        _drop_conditioning_channels(refiner)
    if settings.predict_correction and not refiner.config.predicts_correction:
        _start_predicting_corrections(refiner)
    return refiner


def _start_predicting_corrections(refiner: DepthRefiner) -> None:
    """Zero the U-Net's output layer: its first prediction is "no correction", i.e. the conditioning itself."""
    torch.nn.init.zeros_(refiner.unet.conv_out.weight)
    torch.nn.init.zeros_(refiner.unet.conv_out.bias)
    refiner.config.predicts_correction = True


def _drop_conditioning_channels(refiner: DepthRefiner) -> None:
    """The 'no conditioning' ablation: an [image, noisy] U-Net (Marigold's layout)."""
    latent = refiner.vae.config.latent_channels
    weight = refiner.unet.conv_in.weight.detach()
    replace_conv_in(refiner.unet, torch.cat([weight[:, :latent], weight[:, 2 * latent:]], dim=1))


class SimulatedBase:
    """A stand-in base model: the ground truth, blurred, downsampled and affinely perturbed (data/degrade)."""

    sees_whole_scene = False  # its degradation is local, so it is applied to the training crop

    def __init__(self, seed: int, kind: str = "blurry"):
        from betterdepth_engine.data.degrade import DEGRADATIONS

        if kind not in DEGRADATIONS:
            raise BetterDepthError(BetterDepthError.BAD_INPUT, f"Unknown simulated base 'simulated:{kind}'.",
                                   f"Use one of: simulated, {', '.join(f'simulated:{name}' for name in DEGRADATIONS)}.")
        self.kind = kind
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, batch: dict) -> torch.Tensor:
        """Raw affine-invariant disparity [B, 1, H, W] for the batch's scenes."""
        from betterdepth_engine.data.degrade import degrade_depth

        return degrade_depth(batch["depth"], batch["valid_mask"], self.generator, self.kind)[:, None]


def training_base(spec: str, seed: int, device: torch.device):
    if spec == "simulated":
        return SimulatedBase(seed)
    if spec.startswith("simulated:"):
        return SimulatedBase(seed, spec.removeprefix("simulated:"))
    return ModelBase(spec, device)


def training_bases(settings: RefinerTrainingSettings, device: torch.device) -> list:
    """[base] or [base, second base]; each simulated one draws from its own seeded generator."""
    if not 0.0 <= settings.second_base_share <= 1.0:
        raise BetterDepthError(BetterDepthError.BAD_INPUT,
                               f"--second-base-share must be in [0, 1], not {settings.second_base_share}.",
                               "It is the probability that a batch is conditioned by --second-base.")
    bases = [training_base(settings.base, settings.seed, device)]
    if settings.second_base:
        bases.append(training_base(settings.second_base, settings.seed + 2, device))
    return bases


class ModelBase:
    """A real base model, frozen, run image by image through the engine's base interface."""

    sees_whole_scene = True  # as at inference: a crop would show it a different picture

    def __init__(self, spec: str, device: torch.device):
        from betterdepth_engine.models.loading import load_base_model

        self.model = load_base_model(spec, device)

    def __call__(self, batch: dict) -> torch.Tensor:
        """Raw affine-invariant disparity [B, 1, H, W] for the batch's images."""
        from betterdepth_engine.images import LoadedImage

        rgb = (batch["image"].clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        predictions = [self.model.predict(LoadedImage(rgb=image)).disparity for image in rgb]
        return torch.from_numpy(np.stack(predictions))[:, None]


def conditioning_and_mask(settings: RefinerTrainingSettings, base: torch.Tensor, target: torch.Tensor,
                          supervised: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(conditioning in [-1, 1], latent loss mask, share of patches kept by the patch mask)."""
    if settings.pre_alignment:
        conditioning = objectives.pre_align(base, target, supervised)
    else:
        conditioning = objectives.self_normalized(base, supervised)
    mask = objectives.latent_valid_mask(supervised, factor)
    kept_fraction = 1.0
    if settings.patch_mask:
        keep = objectives.patch_keep_mask(conditioning, target, supervised, settings.patch_size or factor, settings.eta)
        if keep.shape != mask.shape:
            keep = torch.nn.functional.interpolate(keep.float(), size=mask.shape[-2:], mode="nearest") > 0.5
        kept_fraction = keep.float().mean().item()
        mask = mask & keep
    return conditioning, mask, kept_fraction


def sample_timesteps(settings: RefinerTrainingSettings, batch_size: int, generator: torch.Generator,
                     num_train_timesteps: int) -> torch.Tensor:
    timesteps = torch.randint(0, num_train_timesteps, (batch_size,), generator=generator)
    at_top = torch.rand(batch_size, generator=generator) < settings.high_timestep_fraction
    return torch.where(at_top, num_train_timesteps - 1, timesteps)


def train_refiner(settings: RefinerTrainingSettings) -> Path:
    """Train (or resume) and export the refiner to OUTPUT_DIR/refiner; returns that folder.

    Runs on one device, or on several GPUs when started by `accelerate launch` (each process takes its own
    batches; gradients are averaged, so the effective batch is batch_size x gradient_accumulation x processes).
    Mixed precision (--mixed-precision bf16/fp16) goes through accelerate's autocast and, for fp16, its scaler.
    """
    from accelerate import Accelerator
    from diffusers.training_utils import EMAModel

    if settings.predict_correction and not settings.conditioning:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, "--predict-correction needs the conditioning input.",
                               "Drop --no-conditioning, or --predict-correction.")
    device = training_device(settings)
    accelerator = Accelerator(mixed_precision=settings.mixed_precision, cpu=device.type == "cpu",
                              device_placement=False)
    if accelerator.num_processes > 1:
        device = accelerator.device  # this process's GPU
    main = accelerator.is_main_process
    # Models first: a wrong path or name fails before a run folder with those settings exists.
    bases = training_bases(settings, device)
    refiner = build_refiner(settings)
    if main:
        prepare_run_folder(settings)
    accelerator.wait_for_everyone()  # the others read the run folder only once it is checked and written
    folder = Path(settings.output_dir)
    unet = refiner.unet.train().requires_grad_(True)
    refiner.vae.to(device)
    unet.to(device)
    embedding = refiner.empty_prompt_embedding.to(device)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=settings.learning_rate, weight_decay=0.0)
    ema = EMAModel(unet.parameters(), decay=settings.ema_decay) if settings.ema_decay > 0 else None
    generator = torch.Generator().manual_seed(settings.seed + 1000 * accelerator.process_index)
    crop_generator = torch.Generator().manual_seed(settings.seed + 1)
    base_choice_generator = torch.Generator().manual_seed(settings.seed + 3)

    stateful = {"unet": unet, "optimizer": optimizer, "ema": ema, "generator": generator,
                "crop_generator": crop_generator, "base_choice_generator": base_choice_generator}
    first_step, state = resume(folder, settings, stateful)
    if state:
        # Checkpoints written before the second base existed hold one base generator.
        base_states = state.get("base_generators", [state.get("base_generator")])
        for base, base_state in zip(bases, base_states):
            if isinstance(base, SimulatedBase):
                base.generator.set_state(base_state)
    model, prepared_optimizer = accelerator.prepare(unet, optimizer)

    factor = vae_downscale_factor(refiner.vae)
    alphas_cumprod = refiner.scheduler.alphas_cumprod.to(device)
    batches = training_batches(settings, first_step, accelerator.process_index, accelerator.num_processes)
    log = TrainingLog(folder, first_step, settings.steps, "train refiner") if main else None
    for step in range(first_step, settings.steps):
        rate = learning_rate_at(settings, step)
        set_learning_rate(optimizer, rate)
        values = {"loss": 0.0, "kept_patches": 0.0}
        if settings.decoded_gradient_weight:
            values["decoded_gradient"] = 0.0
        if len(bases) > 1:
            values["second_base"] = 0.0
        for micro_step in range(settings.gradient_accumulation):
            batch = next(batches)
            base = bases[0]
            if len(bases) > 1 and torch.rand((), generator=base_choice_generator) < settings.second_base_share:
                base = bases[1]
                values["second_base"] += 1.0 / settings.gradient_accumulation
            if base.sees_whole_scene:
                batch["base_disparity"] = base(batch)
            batch = random_crops(batch, settings.crop_size, crop_generator)
            image = batch["image"].to(device) * 2.0 - 1.0
            target, supervised = objectives.normalized_target_disparity(
                batch["depth"][:, None].to(device), batch["valid_mask"][:, None].to(device), settings.sky_as_far)
            base_disparity = batch["base_disparity"] if base.sees_whole_scene else base(batch)
            with torch.no_grad():
                conditioning, mask, kept = conditioning_and_mask(
                    settings, base_disparity.to(device), target, supervised, factor)
                latents = refiner.encode(torch.cat([image, conditioning.repeat(1, 3, 1, 1), target.repeat(1, 3, 1, 1)]))
            image_latent, conditioning_latent, target_latent = latents.chunk(3)
            if refiner.config.predicts_correction:
                target_latent = target_latent - conditioning_latent
            timesteps = sample_timesteps(settings, image.shape[0], generator, len(alphas_cumprod)).to(device)
            noise = torch.randn(target_latent.shape, generator=generator).to(device)
            noisy, velocity = objectives.v_prediction_target(target_latent, noise, alphas_cumprod[timesteps])
            parts = [image_latent, conditioning_latent, noisy] if settings.conditioning else [image_latent, noisy]
            # Gradients are averaged across processes once per step, on its last micro-batch.
            last = micro_step == settings.gradient_accumulation - 1
            with contextlib.nullcontext() if last else accelerator.no_sync(model):
                with accelerator.autocast():
                    prediction = model(torch.cat(parts, dim=1), timesteps,
                                       encoder_hidden_states=embedding.expand(image.shape[0], -1, -1)).sample
                loss = objectives.masked_mse(prediction.float(), velocity, mask)
                if settings.decoded_gradient_weight:
                    decoded = decoded_gradient_loss(refiner, noisy, prediction.float(), alphas_cumprod[timesteps],
                                                    conditioning_latent, target, mask)
                    values["decoded_gradient"] += decoded.item() / settings.gradient_accumulation
                    loss = loss + settings.decoded_gradient_weight * decoded
                loss = loss / settings.gradient_accumulation
                accelerator.backward(loss)
            values["loss"] += loss.item()
            values["kept_patches"] += kept / settings.gradient_accumulation
        accelerator.clip_grad_norm_(unet.parameters(), 1.0)
        prepared_optimizer.step()
        prepared_optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(unet.parameters())
        if main:
            log.step(step + 1, values | {"lr": rate}, write=(step + 1) % settings.log_every == 0)
            checkpoint_if_due(folder, settings, step + 1, stateful, base_generators=[
                base.generator.get_state() if isinstance(base, SimulatedBase) else None for base in bases])
    accelerator.wait_for_everyone()
    if not main:
        return folder / "refiner"
    log.close()
    return export_refiner(refiner, ema, settings, folder / "refiner")


def decoded_gradient_loss(refiner: DepthRefiner, noisy: torch.Tensor, prediction: torch.Tensor,
                          alphas_cumprod_t: torch.Tensor, conditioning_latent: torch.Tensor, target: torch.Tensor,
                          latent_mask: torch.Tensor) -> torch.Tensor:
    """The decoded depth's neighbour differences against the target's, over the pixels of the kept latent
    pixels; gradients reach the U-Net through the frozen decoder."""
    estimate = objectives.clean_latent_estimate(noisy, prediction, alphas_cumprod_t)
    if refiner.config.predicts_correction:
        estimate = estimate + conditioning_latent
    decoded = refiner.decode_depth(estimate)
    pixel_mask = torch.nn.functional.interpolate(latent_mask.float(), size=target.shape[-2:], mode="nearest") > 0.5
    return objectives.gradient_l1(decoded, target, pixel_mask)


def describe_bases(settings: RefinerTrainingSettings) -> str:
    """The training bases for a model's description: a model folder by its last two path parts (RUN/base),
    not by a path that only meant something on the training machine."""
    def name(spec: str) -> str:
        return "/".join(Path(spec).parts[-2:]) if Path(spec).is_dir() else spec

    if not settings.second_base:
        return name(settings.base)
    return f"{name(settings.base)}, or {name(settings.second_base)} for {settings.second_base_share:.0%} of batches"


def export_refiner(refiner: DepthRefiner, ema, settings: RefinerTrainingSettings, destination: Path) -> Path:
    """Save the EMA weights (if any) as a loadable refiner folder."""
    unet = copy.deepcopy(refiner.unet).eval().cpu()
    if ema is not None:
        ema.copy_to(unet.parameters())
    exported = DepthRefiner(refiner.vae.cpu(), unet, refiner.scheduler, refiner.empty_prompt_embedding.cpu(),
                            RefinerConfig(
                                default_processing_resolution=max(settings.height, settings.width),
                                predicts_correction=refiner.config.predicts_correction,
                                description=f"BetterDepth refiner trained by `betterdepth train refiner` "
                                            f"({settings.steps} steps, base {describe_bases(settings)}"
                                            f"{', predicting corrections' if refiner.config.predicts_correction else ''})",
                            ))
    exported.save_pretrained(destination)
    return destination
