"""Turn what the user typed (`default`, an alias, a folder, a hub id) into a base model or a refiner."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.models.base import BaseDepthModel
from betterdepth_engine.models.refiner import DepthRefiner

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"

# Short names for well-known public checkpoints (fetched from the hub only when named).
BASE_ALIASES = {
    "depth-anything-v2-small": "depth-anything/Depth-Anything-V2-Small-hf",
    "depth-anything-v2-base": "depth-anything/Depth-Anything-V2-Base-hf",
    "depth-anything-v2-large": "depth-anything/Depth-Anything-V2-Large-hf",
    "depth-anything-small": "LiheYoung/depth-anything-small-hf",
    "dpt-large": "Intel/dpt-large",
    "dpt-hybrid-midas": "Intel/dpt-hybrid-midas",
    "marigold": "prs-eth/marigold-depth-v1-1",
}
REFINER_ALIASES = {"marigold": "prs-eth/marigold-depth-v1-1"}


def _default_folder(kind: str) -> Path:
    folder = DEFAULT_WEIGHTS / kind
    if not folder.is_dir():
        raise BetterDepthError(
            BetterDepthError.MODEL_NOT_FOUND,
            f"The default {kind} model is not part of this installation ({folder} is missing).",
            f"Pass --{kind} with a model folder or hub id, or build the demo's tiny models with `make tiny-models`.",
        )
    return folder


def _is_marigold(source: str) -> bool:
    index = Path(source) / "model_index.json"
    if index.exists():
        return json.loads(index.read_text()).get("_class_name") == "MarigoldDepthPipeline"
    return "marigold" in source.lower() and not Path(source).exists()


def load_base_model(
    spec: str = "default",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    base_dir: str | Path | None = None,
    base_space: str = "disparity",
    depth_range_ratio: float = 10.0,
    seed: int = 0,
) -> BaseDepthModel:
    """A base model from `default`, an alias in BASE_ALIASES, a local folder or a hub id; or files in base_dir."""
    from betterdepth_engine.models.default_base import DefaultBaseModel, is_default_base_folder

    if base_dir is not None:
        from betterdepth_engine.models.file_base import FileBaseModel

        return FileBaseModel(base_dir, space=base_space)
    source = str(_default_folder("base")) if spec == "default" else BASE_ALIASES.get(spec, spec)
    if is_default_base_folder(Path(source)):
        return DefaultBaseModel.from_pretrained(source, device=device, dtype=dtype)
    if _is_marigold(source):
        from betterdepth_engine.models.marigold_base import MarigoldBaseModel

        return MarigoldBaseModel.from_pretrained(
            source, device=device, dtype=dtype, depth_range_ratio=depth_range_ratio, seed=seed
        )
    from betterdepth_engine.models.transformers_base import TransformersDepthModel

    return TransformersDepthModel.from_pretrained(source, device=device, dtype=dtype)


def load_refiner(
    spec: str = "default", device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> DepthRefiner | None:
    """A refiner from `default`, `none` (no refinement), an alias, a local folder or a hub id."""
    if spec == "none":
        return None
    source = _default_folder("refiner") if spec == "default" else REFINER_ALIASES.get(spec, spec)
    return DepthRefiner.from_pretrained(source, dtype=dtype, inference_only=True).to(device=device)
