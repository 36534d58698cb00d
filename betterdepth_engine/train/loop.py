"""What every training run shares: device and precision, resumable checkpoints, the loss log, data batches.

A run folder holds `config.json`, `log.jsonl` (one line per logged step), `checkpoint/` (the latest state,
replaced atomically) and, at the end, the exported model. Running the same command again resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.fileio import check_output_folder


@dataclasses.dataclass
class RunSettings:
    """Settings every trainer has; each trainer's config extends this."""

    output_dir: str
    steps: int = 1000
    batch_size: int = 8
    gradient_accumulation: int = 1
    learning_rate: float = 1e-4
    height: int = 256
    width: int = 256
    seed: int = 0
    device: str = "auto"
    mixed_precision: str = "no"  # "no", "bf16" or "fp16" (CUDA only)
    checkpoint_every: int = 200
    log_every: int = 10
    data_workers: int = 0  # DataLoader processes rendering synthetic scenes (0 = in the training process)
    scene_cache: str = ""  # a folder from scripts/cache_synthetic.py: reuse those scenes instead of rendering
    # Real data instead of synthetic scenes (train/real_data.py): NAME:ROOT[:SPLIT_FILE],... with NAME hypersim or
    # vkitti, in Marigold's layouts; mixed by dataset_weights (empty: equally; the paper's mix: 0.9,0.1).
    datasets: str = ""
    dataset_weights: str = ""
    # The last N steps decay the learning rate linearly to 0 (warmup-stable-decay): a run at a constant rate
    # can be extended, and resumed with a cooldown once its budget is known.
    cooldown_steps: int = 0


def learning_rate_at(settings: RunSettings, step: int, warmup_steps: int = 0) -> float:
    """The learning rate of optimizer step `step` (0-based): a linear warm-up over `warmup_steps`, then
    --learning-rate, then a linear decay to 0 over the last --cooldown-steps."""
    rate = settings.learning_rate * min(1.0, (step + 1) / warmup_steps) if warmup_steps else settings.learning_rate
    if not settings.cooldown_steps or step < settings.steps - settings.cooldown_steps:
        return rate
    return rate * max(0.0, (settings.steps - step) / settings.cooldown_steps)


def set_learning_rate(optimizer: torch.optim.Optimizer, rate: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = rate


def cooldown_start(settings: RunSettings) -> int | None:
    """The step the cooldown starts at (stored in checkpoints), None without one."""
    return settings.steps - settings.cooldown_steps if settings.cooldown_steps else None


def check_schedule_on_resume(folder: Path, state: dict, settings: RunSettings) -> None:
    """--steps and --cooldown-steps may change on resume only where the steps already run keep their rates."""
    previous_start, start = state.get("cooldown_start"), cooldown_start(settings)
    starts = [value for value in (previous_start, start) if value is not None]
    if previous_start != start and state["step"] > min(starts):
        raise BetterDepthError(
            BetterDepthError.BAD_INPUT,
            f"Cannot resume '{folder}' at step {state['step']} with the learning-rate cooldown starting at step "
            f"{start}: the steps already run used another schedule (cooldown from step {previous_start}).",
            "Resume with the run's --steps and --cooldown-steps, or start a new --output-dir.",
        )


def training_device(settings: RunSettings) -> torch.device:
    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if settings.mixed_precision != "no" and not device.startswith("cuda"):
        raise BetterDepthError(BetterDepthError.BAD_INPUT, "Mixed precision needs a CUDA device.",
                               "Use --mixed-precision no on the CPU.")
    return torch.device(device)


def autocast(settings: RunSettings, device: torch.device):
    if settings.mixed_precision == "no":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if settings.mixed_precision == "bf16" else torch.float16)


def prepare_run_folder(settings: RunSettings) -> Path:
    """Create the run folder, or check that an existing one was made with the same settings (to resume)."""
    if not 0 <= settings.cooldown_steps <= settings.steps:
        raise BetterDepthError(BetterDepthError.BAD_INPUT,
                               f"--cooldown-steps {settings.cooldown_steps} does not fit in --steps {settings.steps}.",
                               "Give a cooldown between 0 and the number of steps.")
    folder = Path(settings.output_dir)
    check_output_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.json"
    # Through JSON so tuples and lists compare equal with what an earlier run wrote.
    config = json.loads(json.dumps({"trainer": type(settings).__name__, **dataclasses.asdict(settings)}))
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        # Where the scenes come from (rendered on the fly, by workers, or from a cache of the same generator)
        # may change when a run resumes; the run's model and optimisation settings may not.
        # A learning-rate cooldown may be added to a run that has not reached it (check_schedule_on_resume).
        ignored = {"steps", "checkpoint_every", "log_every", "data_workers", "scene_cache", "device", "output_dir",
                   "cooldown_steps"}
        # A setting added to the trainer after the run started reads as its default.
        defaults = json.loads(json.dumps({field.name: field.default for field in dataclasses.fields(settings)
                                          if field.default is not dataclasses.MISSING}))
        changed = {key for key in config
                   if key not in ignored and previous.get(key, defaults.get(key)) != config[key]}
        if changed:
            raise BetterDepthError(
                BetterDepthError.BAD_INPUT,
                f"'{folder}' holds a run with different settings ({', '.join(sorted(changed))}).",
                "Resume with the same settings (only --steps may grow), or choose a new --output-dir.",
            )
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return folder


def save_checkpoint(folder: Path, state: dict) -> None:
    """Write `state` (tensors and state dicts) to folder/checkpoint, replacing the previous one atomically."""
    staging = folder / "checkpoint.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    torch.save(state, staging / "state.pt")
    final = folder / "checkpoint"
    previous = folder / "checkpoint.previous"
    shutil.rmtree(previous, ignore_errors=True)
    if final.exists():
        final.rename(previous)
    staging.rename(final)
    shutil.rmtree(previous, ignore_errors=True)


def load_checkpoint(folder: Path) -> dict | None:
    path = folder / "checkpoint" / "state.pt"
    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None


def _state_of(item) -> object:
    return item.get_state() if isinstance(item, torch.Generator) else item.state_dict()


def resume(folder: Path, settings: RunSettings, stateful: Mapping[str, object]) -> tuple[int, dict]:
    """(first step to run, the checkpoint's state or {} for a new run), with every object in `stateful` restored.

    `stateful` names what a checkpoint holds: modules, optimizers, EMA and torch.Generators, each saved under its
    name by `checkpoint_if_due`; None entries (an optional EMA) and names an older checkpoint lacks are skipped.
    """
    state = load_checkpoint(folder)
    if state is None:
        return 0, {}
    check_schedule_on_resume(folder, state, settings)
    for name, item in stateful.items():
        if item is None or state.get(name) is None:
            continue
        if isinstance(item, torch.Generator):
            item.set_state(state[name])
        else:
            item.load_state_dict(state[name])
    return state["step"], state


def checkpoint_if_due(folder: Path, settings: RunSettings, steps_done: int, stateful: Mapping[str, object],
                      **extra) -> None:
    """Save `stateful` (as `resume` reads it) and `extra` every settings.checkpoint_every steps and at the end."""
    if steps_done % settings.checkpoint_every and steps_done != settings.steps:
        return
    states = {name: None if item is None else _state_of(item) for name, item in stateful.items()}
    save_checkpoint(folder, {"step": steps_done, "cooldown_start": cooldown_start(settings), **states, **extra})


class TrainingLog:
    """Appends JSON lines to log.jsonl and shows a tqdm bar with the latest values."""

    def __init__(self, folder: Path, first_step: int, total_steps: int, description: str):
        from tqdm import tqdm

        self.path = folder / "log.jsonl"
        if self.path.exists():  # entries after the checkpoint being resumed will be logged again: drop them
            lines = self.path.read_text().splitlines(keepends=True)
            self.path.write_text("".join(line for line in lines if json.loads(line)["step"] <= first_step))
        self.bar = tqdm(total=total_steps, initial=first_step, desc=description, unit="step", dynamic_ncols=True)
        self.started = time.perf_counter()

    def step(self, step: int, values: dict[str, float], write: bool) -> None:
        self.bar.update(1)
        if write:
            record = {"step": step, "elapsed_s": round(time.perf_counter() - self.started, 1), **values}
            with self.path.open("a") as log:
                log.write(json.dumps(record) + "\n")
            self.bar.set_postfix({key: f"{value:.4g}" for key, value in values.items()})

    def close(self) -> None:
        self.bar.close()


def training_batches(settings: RunSettings, first_step: int, process_index: int = 0,
                     num_processes: int = 1) -> Iterator[dict]:
    """Training batches (real datasets with --datasets, else synthetic scenes), resuming exactly where step
    `first_step` would start; with several processes (accelerate), each takes its own share of batches."""
    from torch.utils.data import DataLoader

    if settings.datasets:
        from betterdepth_engine.train.real_data import real_batches

        return real_batches(settings, first_step * settings.gradient_accumulation, process_index, num_processes)
    if num_processes > 1:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, "Training on several processes needs --datasets.",
                               "Synthetic scenes are drawn in sequence by one process: train them on one GPU, or "
                               "pass real datasets (hypersim:ROOT,vkitti:ROOT).")
    if settings.scene_cache:
        from betterdepth_engine.data.cache import cached_batches

        return cached_batches(Path(settings.scene_cache), settings.height, settings.width, settings.batch_size,
                              settings.seed, first_step * settings.gradient_accumulation)

    from betterdepth_engine.data.synthetic import SyntheticDepthDataset

    dataset = SyntheticDepthDataset(
        "train", settings.height, settings.width, settings.batch_size,
        start_index=first_step * settings.gradient_accumulation * settings.batch_size,
    )
    if settings.data_workers == 0:
        return iter(dataset)
    return iter(DataLoader(dataset, batch_size=None, num_workers=settings.data_workers, persistent_workers=True))


def random_crops(batch: dict, size: int, generator: torch.Generator) -> dict:
    """The batch with image, depth, valid_mask (and base_disparity, if present) cut to one random size x size
    window per sample (the same window for all); size 0 leaves the batch whole. Trainers of fully
    convolutional models use it to spend a CPU step on more scenes."""
    if not size:
        return batch
    height, width = batch["depth"].shape[-2:]
    if size > min(height, width) or size % 8:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, f"Crop size {size} does not fit {width}x{height} scenes.",
                               "Use a multiple of 8 no larger than the scenes (or 0 for whole scenes).")
    count = len(batch["depth"])
    tops = torch.randint(0, height - size + 1, (count,), generator=generator).tolist()
    lefts = torch.randint(0, width - size + 1, (count,), generator=generator).tolist()
    cropped = dict(batch)
    for key in [key for key in ("image", "depth", "valid_mask", "base_disparity") if key in batch]:
        cropped[key] = torch.stack([sample[..., top:top + size, left:left + size]
                                    for sample, top, left in zip(batch[key], tops, lefts)])
    return cropped
