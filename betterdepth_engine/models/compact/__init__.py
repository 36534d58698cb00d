"""Inference-only twins of the refiner's diffusers components, in plain torch.

Why: importing diffusers costs ~1.6 s on the 2-core reference machine (its utilities import torch._dynamo, its
model classes import transformers and every transformer model family), more than the whole refinement of one
photo; `betterdepth estimate` pays it per run (docs/benchmarks.md "Start-up"). These modules load the same
folders and state dicts (strict, same parameter names) and compute the same outputs (tests/models/
test_compact.py compares them with diffusers), for the configurations each `unsupported_reason` accepts: SD2-
style U-Nets, AutoencoderKL, DDIM. Training, saving and any other configuration use diffusers.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from betterdepth_engine.models.compact import autoencoder, ddim, unet
from betterdepth_engine.models.compact.layers import CompactModule

WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"


def _read_config(folder: Path, name: str = "config.json") -> dict:
    return json.loads((folder / name).read_text())


def _load_module(module_class, config: dict, folder: Path, dtype: torch.dtype | None) -> CompactModule:
    with torch.device("meta"):
        module = module_class(config)
    state = load_file(folder / WEIGHTS_FILE)
    if dtype is not None:
        state = {name: tensor.to(dtype) for name, tensor in state.items()}
    module.load_state_dict(state, strict=True, assign=True)
    return module.eval().requires_grad_(False)


def unsupported_reason(folder: Path, vae_class: str) -> str | None:
    """Why a refiner folder's components cannot load as compact modules, or None when all three can."""
    if vae_class != "AutoencoderKL":
        return f"VAE class {vae_class}"
    return (autoencoder.unsupported_reason(_read_config(folder / "vae"))
            or unet.unsupported_reason(_read_config(folder / "unet"))
            or ddim.unsupported_reason(_read_config(folder / "scheduler", "scheduler_config.json")))


def load_components(folder: Path, dtype: torch.dtype | None = None):
    """(vae, unet, scheduler) of a refiner folder that `unsupported_reason` accepts; `dtype`: as stored if None."""
    return (
        _load_module(autoencoder.CompactAutoencoderKL, _read_config(folder / "vae"), folder / "vae", dtype),
        _load_module(unet.CompactUNet, _read_config(folder / "unet"), folder / "unet", dtype),
        ddim.CompactDDIM(_read_config(folder / "scheduler", "scheduler_config.json")),
    )
