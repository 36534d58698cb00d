"""Training the project's small feed-forward base model (SmallDepthNet) with an affine-invariant loss.

It is meant to be fast and robust, and it is fine that it is smooth: the refiner adds the detail.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.models.default_base import CLASS_NAME, SmallDepthNet, is_default_base_folder
from betterdepth_engine.train import objectives
from betterdepth_engine.train.loop import (
    RunSettings, TrainingLog, autocast, checkpoint_if_due, learning_rate_at, prepare_run_folder, resume,
    set_learning_rate, training_batches, training_device,
)


@dataclasses.dataclass
class BaseTrainingSettings(RunSettings):
    channels: tuple[int, ...] = (32, 64, 128, 192)
    processing_resolution: int = 384
    learning_rate: float = 1e-3
    gradient_weight: float = 0.5
    sky_as_far: bool = True
    init: str = ""  # a trained base folder to fine-tune (its architecture; --processing-resolution is applied)


WARMUP_STEPS = 200  # a high learning rate (from scratch) or a restarted one (--init): ramp it up


def load_or_create(settings: BaseTrainingSettings) -> SmallDepthNet:
    """The network to train: the --init base (same architecture required) or a new one."""
    if not settings.init:
        return SmallDepthNet(channels=tuple(settings.channels), processing_resolution=settings.processing_resolution)
    folder = Path(settings.init)
    if not is_default_base_folder(folder):
        raise BetterDepthError(BetterDepthError.MODEL_NOT_FOUND, f"No {CLASS_NAME} base model in '{folder}'.",
                               "Pass the 'base' folder of a `betterdepth train base` run (config.json names "
                               f"{CLASS_NAME}).")
    network = SmallDepthNet.from_pretrained(folder)
    if tuple(network.config.channels) != tuple(settings.channels):
        raise BetterDepthError(BetterDepthError.BAD_INPUT,
                               f"--channels {' '.join(map(str, settings.channels))} differs from the --init base's "
                               f"{' '.join(map(str, network.config.channels))}.",
                               "Fine-tuning keeps the architecture: pass the init's channels (or leave them out).")
    network.config.processing_resolution = settings.processing_resolution
    return network


def train_base(settings: BaseTrainingSettings) -> Path:
    """Train (or resume) and export the base model to OUTPUT_DIR/base; returns that folder."""
    device = training_device(settings)
    torch.manual_seed(settings.seed)
    network = load_or_create(settings)  # before the run folder: a wrong --init leaves nothing behind
    folder = prepare_run_folder(settings)
    network.to(device).train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=settings.learning_rate, weight_decay=1e-4)
    stateful = {"network": network, "optimizer": optimizer}
    first_step, _ = resume(folder, settings, stateful)
    batches = training_batches(settings, first_step)
    log = TrainingLog(folder, first_step, settings.steps, "train base")
    for step in range(first_step, settings.steps):
        rate = learning_rate_at(settings, step, WARMUP_STEPS)
        set_learning_rate(optimizer, rate)
        total = 0.0
        for _ in range(settings.gradient_accumulation):
            batch = next(batches)
            image = batch["image"].to(device) * 2.0 - 1.0
            target, supervised = objectives.normalized_target_disparity(
                batch["depth"][:, None].to(device), batch["valid_mask"][:, None].to(device), settings.sky_as_far)
            with autocast(settings, device):
                prediction = network(image).float()
            loss = objectives.scale_shift_invariant_loss(prediction, target, supervised, settings.gradient_weight)
            (loss / settings.gradient_accumulation).backward()
            total += loss.item() / settings.gradient_accumulation
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        log.step(step + 1, {"loss": total, "lr": rate},
                 write=(step + 1) % settings.log_every == 0)
        checkpoint_if_due(folder, settings, step + 1, stateful)
    log.close()
    destination = folder / "base"
    network.eval().cpu().save_pretrained(destination)
    return destination
