"""Deterministic DDIM (eta = 0) on a "trailing" schedule without diffusers: diffusers' DDIMScheduler for the
configurations `unsupported_reason` accepts, with the same `set_timesteps` / `step` / `add_noise` calls."""

from __future__ import annotations

import numpy as np
import torch

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def unsupported_reason(config: dict) -> str | None:
    """Why this scheduler config is not one the compact DDIM implements, or None when it is."""
    if config.get("beta_schedule", "linear") not in ("linear", "scaled_linear"):
        return f"beta_schedule={config['beta_schedule']!r}"
    if config.get("trained_betas") is not None or config.get("thresholding") or config.get("clip_sample", True):
        return "trained betas, thresholding or clipping"
    if config.get("prediction_type", "epsilon") not in PREDICTION_TYPES:
        return f"prediction_type={config['prediction_type']!r}"
    return None


def _rescaled_to_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Shift and scale sqrt(alpha_bar) so the last step is pure noise and the first is unchanged
    (Lin et al. 2024, Algorithm 1)."""
    root = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * (first / (first - last))
    alpha_bar = root**2
    alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    return 1.0 - alphas


class CompactDDIM:
    init_noise_sigma = 1.0

    def __init__(self, config: dict):
        self.config = config
        steps = config.get("num_train_timesteps", 1000)
        start, end = config.get("beta_start", 0.0001), config.get("beta_end", 0.02)
        if config.get("beta_schedule", "linear") == "scaled_linear":
            betas = torch.linspace(start**0.5, end**0.5, steps, dtype=torch.float32) ** 2
        else:
            betas = torch.linspace(start, end, steps, dtype=torch.float32)
        if config.get("rescale_betas_zero_snr", False):
            betas = _rescaled_to_zero_terminal_snr(betas)
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0) if config.get("set_alpha_to_one", True) else self.alphas_cumprod[0]
        self.num_train_timesteps = steps
        self.num_inference_steps: int | None = None
        self.timesteps = torch.empty(0, dtype=torch.int64)

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Trailing spacing: with one step the only timestep is the last one (t = T - 1)."""
        self.num_inference_steps = num_inference_steps
        ratio = self.num_train_timesteps / num_inference_steps
        timesteps = np.round(np.arange(self.num_train_timesteps, 0, -ratio)).astype(np.int64) - 1
        self.timesteps = torch.from_numpy(timesteps).to(device)

    def step(self, model_output: torch.Tensor, timestep: torch.Tensor | int, sample: torch.Tensor,
             return_dict: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One eta = 0 step; returns (previous sample, predicted clean sample), diffusers' return_dict=False."""
        previous = timestep - self.num_train_timesteps // self.num_inference_steps
        alpha_bar = self.alphas_cumprod[timestep]
        alpha_bar_previous = self.alphas_cumprod[previous] if previous >= 0 else self.final_alpha_cumprod
        beta_bar = 1 - alpha_bar
        kind = self.config.get("prediction_type", "epsilon")
        if kind == "epsilon":
            clean = (sample - beta_bar**0.5 * model_output) / alpha_bar**0.5
            noise = model_output
        elif kind == "sample":
            clean = model_output
            noise = (sample - alpha_bar**0.5 * clean) / beta_bar**0.5
        else:
            clean = alpha_bar**0.5 * sample - beta_bar**0.5 * model_output
            noise = alpha_bar**0.5 * model_output + beta_bar**0.5 * sample
        return alpha_bar_previous**0.5 * clean + (1 - alpha_bar_previous) ** 0.5 * noise, clean

    def add_noise(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        alpha_bar = self.alphas_cumprod.to(sample.device, sample.dtype)[timesteps.to(sample.device)].flatten()
        alpha_bar = alpha_bar.view(-1, *([1] * (sample.dim() - 1)))
        return alpha_bar**0.5 * sample + (1 - alpha_bar) ** 0.5 * noise
