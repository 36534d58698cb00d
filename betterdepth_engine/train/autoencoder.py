"""Training a small autoencoder for images and depth maps (no pretrained VAE can be downloaded here).

One AutoencoderKL encodes both the photo and the [-1, 1] disparity copied to 3 channels, as the refiner
needs. The loss is L1 plus an image-gradient L1 (sharp depth edges are the point of the whole method) and a
tiny KL term that keeps the latents bounded. The refiner encodes with the posterior mean, so training decodes
the mean too (sampling would teach the decoder to blur away the noise). At export, `scaling_factor` is set so
that latents have unit standard deviation, as the diffusion noise schedule assumes.

`fine_tune_decoder` starts from a trained autoencoder, freezes its encoder and trains only the decoder, on
depth maps only: the latent space (and the scaling factor) stay exactly as they were, so a refiner trained
in it stays valid, while its depth maps come out sharper. BetterDepth never decodes a photo.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.train import objectives
from betterdepth_engine.train.loop import (
    RunSettings, TrainingLog, autocast, checkpoint_if_due, learning_rate_at, prepare_run_folder, random_crops,
    resume, set_learning_rate, synthetic_batches, training_device,
)

# The modules that define the latent space: frozen when fine-tuning the decoder (post_quant_conv is the decoder's).
LATENT_SPACE_MODULES = ("encoder", "quant_conv")

AUTOENCODER_PRESETS = {
    # 8x downsampling (4 blocks), 4 latent channels: SD's latent layout at a fraction of the size. Sized for
    # the CPU budget: at 512 px it encodes image + conditioning in ~0.2 s and decodes in ~0.26 s on 2 cores
    # (32 channels at full resolution instead of 16 cost 4x that).
    # No attention in the middle block: it would be trained on crops and run on whole images of any size.
    "small": dict(block_out_channels=(16, 32, 64, 64), layers_per_block=1, norm_num_groups=8,
                  mid_block_add_attention=False),
    "tiny": dict(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4),
}


@dataclasses.dataclass
class AutoencoderTrainingSettings(RunSettings):
    preset: str = "small"
    learning_rate: float = 3e-4
    kl_weight: float = 1e-6
    gradient_weight: float = 1.0
    sky_as_far: bool = True
    crop_size: int = 0  # train on random crops of this size (0 = whole images); the model is fully convolutional
    fine_tune_decoder: str = ""  # a trained autoencoder folder: train only its decoder, on depth maps


def load_or_create(settings: AutoencoderTrainingSettings):
    from diffusers import AutoencoderKL

    if settings.fine_tune_decoder:
        folder = Path(settings.fine_tune_decoder)
        if not (folder / "config.json").exists():
            raise BetterDepthError(BetterDepthError.MODEL_NOT_FOUND,
                                   f"No autoencoder in '{folder}' (no config.json).",
                                   "Pass the 'autoencoder' folder of a `betterdepth train autoencoder` run.")
        vae = AutoencoderKL.from_pretrained(folder, torch_dtype=torch.float32)
        for name in LATENT_SPACE_MODULES:
            getattr(vae, name).requires_grad_(False)
        return vae
    preset = AUTOENCODER_PRESETS[settings.preset]
    blocks = len(preset["block_out_channels"])
    return AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * blocks,
                         up_block_types=("UpDecoderBlock2D",) * blocks,
                         latent_channels=4, sample_size=settings.height, **preset)


def photos_and_depth_maps(batch: dict, settings: AutoencoderTrainingSettings, device) -> torch.Tensor:
    """[2B, 3, H, W] in [-1, 1]: the batch's photos, then its normalised disparity copied to 3 channels.
    [B, 3, H, W], the depth maps only, when fine-tuning the decoder."""
    target, _ = objectives.normalized_target_disparity(
        batch["depth"][:, None].to(device), batch["valid_mask"][:, None].to(device), settings.sky_as_far)
    depth_maps = target.repeat(1, 3, 1, 1)
    if settings.fine_tune_decoder:
        return depth_maps
    return torch.cat([batch["image"].to(device) * 2.0 - 1.0, depth_maps])


def gradient_l1(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    def gradients(x):
        return x[..., 1:] - x[..., :-1], x[..., 1:, :] - x[..., :-1, :]

    (rx, ry), (tx, ty) = gradients(reconstruction), gradients(target)
    return (rx - tx).abs().mean() + (ry - ty).abs().mean()


def train_autoencoder(settings: AutoencoderTrainingSettings) -> Path:
    """Train (or resume) and export the autoencoder to OUTPUT_DIR/autoencoder; returns that folder."""
    device = training_device(settings)
    torch.manual_seed(settings.seed)
    vae = load_or_create(settings).to(device).train()  # before the run folder: a wrong path leaves none behind
    folder = prepare_run_folder(settings)
    trained = [parameter for parameter in vae.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=settings.learning_rate, weight_decay=0.0)
    crop_generator = torch.Generator().manual_seed(settings.seed)
    stateful = {"vae": vae, "optimizer": optimizer, "crop_generator": crop_generator}
    first_step, _ = resume(folder, settings, stateful)
    batches = synthetic_batches(settings, first_step)
    log = TrainingLog(folder, first_step, settings.steps, "train autoencoder")
    for step in range(first_step, settings.steps):
        rate = learning_rate_at(settings, step)
        set_learning_rate(optimizer, rate)
        values = {"loss": 0.0, "l1_depth": 0.0} | ({} if settings.fine_tune_decoder else {"l1_image": 0.0})
        for _ in range(settings.gradient_accumulation):
            pixels = photos_and_depth_maps(random_crops(next(batches), settings.crop_size, crop_generator),
                                           settings, device)
            with autocast(settings, device):
                posterior = vae.encode(pixels).latent_dist
                reconstruction = vae.decode(posterior.mode()).sample.float()
            l1 = (reconstruction - pixels).abs()
            loss = l1.mean() + settings.gradient_weight * gradient_l1(reconstruction, pixels)
            if not settings.fine_tune_decoder:
                loss = loss + settings.kl_weight * posterior.kl().mean()
            (loss / settings.gradient_accumulation).backward()
            photo_count = 0 if settings.fine_tune_decoder else len(pixels) // 2
            values["loss"] += loss.item() / settings.gradient_accumulation
            if photo_count:
                values["l1_image"] += l1[:photo_count].mean().item() / settings.gradient_accumulation
            values["l1_depth"] += l1[photo_count:].mean().item() / settings.gradient_accumulation
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        log.step(step + 1, values | {"lr": rate}, write=(step + 1) % settings.log_every == 0)
        checkpoint_if_due(folder, settings, step + 1, stateful)
    log.close()
    vae.eval()
    if not settings.fine_tune_decoder:  # a frozen encoder keeps the scaling factor its refiner was trained with
        vae.register_to_config(scaling_factor=latent_scaling_factor(vae, batches, settings, device))
    destination = folder / "autoencoder"
    vae.cpu().save_pretrained(destination)
    return destination


@torch.no_grad()
def latent_scaling_factor(vae, batches, settings: AutoencoderTrainingSettings, device, batch_count: int = 4) -> float:
    """1 / standard deviation of the latent means of whole photos and depth maps (SD's 0.18215, measured)."""
    latents = [vae.encode(photos_and_depth_maps(next(batches), settings, device)).latent_dist.mean.float().cpu()
               for _ in range(batch_count)]
    return round(1.0 / torch.cat(latents).std().item(), 5)
