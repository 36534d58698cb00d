"""Builders of tiny random-weight models in their real on-disk formats, for tests that must run offline.

Each builder writes a complete model folder (config, weights, processor) to `path` and returns `path`;
each takes well under a second. The outputs are meaningless but deterministic, spatially varying and positive.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# Depth Anything's own normalisation constants (ImageNet), as in its published preprocessor_config.json.
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _he_initialise(model: nn.Module) -> None:
    """Keep a random model's activations at unit scale, so that its output varies across the image.

    With transformers' default initialisation (std 0.02) activations shrink layer by layer and a final ReLU
    outputs ~1e-7 or exactly 0 everywhere, which would make every comparison in a test vacuous.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")


def _make_positive(final_conv: nn.Conv2d) -> None:
    """Non-negative weights on a ReLU'd input plus a positive bias: a positive output, like real disparity."""
    with torch.no_grad():
        final_conv.weight.abs_()
        final_conv.bias.fill_(0.1)


def build_tiny_depth_anything(path: str | Path, metric: bool = False, seed: int = 0) -> Path:
    """A Depth Anything (V1/V2 architecture) with a 4-layer, 32-wide DINOv2 backbone, and its image processor.

    The processor resizes to a 56-px, multiple-of-14 resolution (the real one: 518 px), keeping the aspect ratio.
    `metric=True` gives the metric variant (`depth_estimation_type="metric"`), which outputs depth, not disparity.
    """
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessorPil

    path = Path(path)
    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=37,
        patch_size=14,
        image_size=56,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,  # Depth Anything reshapes the token sequences itself
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        depth_estimation_type="metric" if metric else "relative",
        max_depth=20 if metric else 1,
    )
    torch.manual_seed(seed)
    model = DepthAnythingForDepthEstimation(config)
    _he_initialise(model)
    if metric:
        # The metric head is sigmoid * max_depth: small final weights keep the sigmoid out of saturation.
        with torch.no_grad():
            model.head.conv3.weight.mul_(0.05)
    else:
        _make_positive(model.head.conv3)
    model.save_pretrained(path)
    processor = DPTImageProcessorPil(
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,  # bicubic, as Depth Anything's processor
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )
    processor.save_pretrained(path)
    return path


def build_tiny_dpt(path: str | Path, seed: int = 0) -> Path:
    """A DPT (MiDaS architecture) with a 4-layer, 32-wide ViT backbone at 32 px, and its image processor."""
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessorPil

    path = Path(path)
    config = DPTConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=37,
        image_size=32,
        patch_size=8,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
    )
    torch.manual_seed(seed)
    model = DPTForDepthEstimation(config)
    _he_initialise(model)
    _make_positive(model.head.head[-2])
    model.save_pretrained(path)
    # Like Intel/dpt-large: a fixed square input, normalised to [-1, 1].
    processor = DPTImageProcessorPil(size={"height": 32, "width": 32}, keep_aspect_ratio=False)
    processor.save_pretrained(path)
    return path
