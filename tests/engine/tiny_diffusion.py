"""Tiny Stable Diffusion 2 and Marigold checkpoints in diffusers layout, built offline (text encoder included)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from betterdepth_engine.models.tiny import TINY_CROSS_ATTENTION_DIM, tiny_scheduler_config, tiny_unet, tiny_vae


def _tiny_text_components(folder: Path):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = folder / "vocab.json"
    merges = folder / "merges.txt"
    vocab.write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "b</w>": 3}))
    merges.write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=8)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=4, hidden_size=TINY_CROSS_ATTENTION_DIM, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=8, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    vocab.unlink()
    merges.unlink()
    return tokenizer, text_encoder


def build_tiny_marigold(folder: Path, seed: int = 0) -> Path:
    """A MarigoldDepthPipeline (8-channel U-Net) saved with diffusers' own save_pretrained."""
    from diffusers import DDIMScheduler, MarigoldDepthPipeline

    torch.manual_seed(seed)
    tokenizer, text_encoder = _tiny_text_components(folder)
    pipeline = MarigoldDepthPipeline(
        unet=tiny_unet(in_channels=8), vae=tiny_vae(),
        scheduler=DDIMScheduler(**tiny_scheduler_config(), timestep_spacing="trailing"),
        text_encoder=text_encoder, tokenizer=tokenizer,
        prediction_type="depth", scale_invariant=True, shift_invariant=True,
        default_denoising_steps=2, default_processing_resolution=64,
    )
    pipeline.save_pretrained(folder)
    return folder


def build_tiny_stable_diffusion(folder: Path, seed: int = 0) -> Path:
    """The parts of a Stable Diffusion 2 checkpoint a refiner is created from (4-channel U-Net)."""
    from diffusers import DDIMScheduler

    torch.manual_seed(seed)
    tokenizer, text_encoder = _tiny_text_components(folder)
    tiny_vae().save_pretrained(folder / "vae")
    tiny_unet(in_channels=4).save_pretrained(folder / "unet")
    DDIMScheduler(**tiny_scheduler_config()).save_pretrained(folder / "scheduler")
    text_encoder.save_pretrained(folder / "text_encoder")
    tokenizer.save_pretrained(folder / "tokenizer")
    return folder
