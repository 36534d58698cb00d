"""Training the project's small feed-forward base model (SmallDepthNet) with an affine-invariant loss.

It is meant to be fast and robust, and it is fine that it is smooth: the refiner adds the detail.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.models.default_base import SmallDepthNet
from betterdepth_engine.train import objectives
from betterdepth_engine.train.loop import (
    RunSettings, TrainingLog, autocast, load_checkpoint, prepare_run_folder, save_checkpoint, synthetic_batches,
    training_device,
)


@dataclasses.dataclass
class BaseTrainingSettings(RunSettings):
    channels: tuple[int, ...] = (32, 64, 128, 192)
    processing_resolution: int = 384
    learning_rate: float = 1e-3
    gradient_weight: float = 0.5
    sky_as_far: bool = True
    # The last N steps decay the learning rate linearly to 0 (warmup-stable-decay): a run at a constant rate
    # can be extended, and resumed with a cooldown once its budget is known.
    cooldown_steps: int = 0


def learning_rate_factor(settings: BaseTrainingSettings, step: int) -> float:
    """The learning rate at `step` (optimizer steps done) relative to --learning-rate: 200 warm-up steps, then
    constant, then the cooldown over the last `cooldown_steps` steps."""
    warmup = min(1.0, (step + 1) / 200)
    if not settings.cooldown_steps or step < settings.steps - settings.cooldown_steps:
        return warmup
    return warmup * max(0.0, (settings.steps - step) / settings.cooldown_steps)


def train_base(settings: BaseTrainingSettings) -> Path:
    """Train (or resume) and export the base model to OUTPUT_DIR/base; returns that folder."""
    device = training_device(settings)
    folder = prepare_run_folder(settings)
    torch.manual_seed(settings.seed)
    network = SmallDepthNet(channels=tuple(settings.channels), processing_resolution=settings.processing_resolution)
    network.to(device).train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=settings.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(settings, step))
    cooldown_start = settings.steps - settings.cooldown_steps if settings.cooldown_steps else None
    state = load_checkpoint(folder)
    first_step = 0
    if state is not None:
        network.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        first_step = state["step"]
        # --steps and --cooldown-steps may change on resume only where the steps already run keep their rates.
        previous_start = state.get("cooldown_start")
        starts = [start for start in (previous_start, cooldown_start) if start is not None]
        if previous_start != cooldown_start and first_step > min(starts):
            raise BetterDepthError(
                BetterDepthError.BAD_INPUT,
                f"Cannot resume '{folder}' at step {first_step} with the learning-rate cooldown starting at step "
                f"{cooldown_start}: the steps already run used another schedule (cooldown from step "
                f"{previous_start}).",
                "Resume with the run's --steps and --cooldown-steps, or start a new --output-dir.",
            )
    batches = synthetic_batches(settings, first_step)
    log = TrainingLog(folder, first_step, settings.steps, "train base")
    for step in range(first_step, settings.steps):
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
        schedule.step()
        log.step(step + 1, {"loss": total, "lr": schedule.get_last_lr()[0]},
                 write=(step + 1) % settings.log_every == 0)
        if (step + 1) % settings.checkpoint_every == 0 or step + 1 == settings.steps:
            save_checkpoint(folder, {"step": step + 1, "network": network.state_dict(),
                                     "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                                     "cooldown_start": cooldown_start})
    log.close()
    destination = folder / "base"
    network.eval().cpu().save_pretrained(destination)
    return destination
