"""The project's own small feed-forward base model: fast, robust and smooth (the refiner adds the detail).

A compact convolutional U-Net that predicts affine-invariant disparity. It loads and saves with
`from_pretrained` / `save_pretrained` like every other component, in diffusers' folder layout (`config.json`
with `_class_name: "SmallDepthNet"`, `diffusion_pytorch_model.safetensors`), but is a plain torch module:
importing diffusers would cost more than running it (betterdepth_engine/models/compact/__init__.py).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.fileio import atomic_path
from betterdepth_engine.images import LoadedImage
from betterdepth_engine.models.base import BasePrediction
from betterdepth_engine.resize import image_to_tensor, resize_and_pad, unpad

CLASS_NAME = "SmallDepthNet"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"


class _ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(min(8, out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(min(8, out_channels), out_channels)
        self.skip = (
            nn.Identity() if stride == 1 and in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(self.norm1(self.conv1(x)))
        return F.silu(self.norm2(self.conv2(y)) + self.skip(x))


@dataclass
class SmallDepthNetConfig:
    channels: tuple[int, ...] = (32, 64, 128, 192)
    processing_resolution: int = 384  # the long side the base runs at


class SmallDepthNet(nn.Module):
    """Image in [-1, 1], [B, 3, H, W] (H, W multiples of 2**len(channels)) -> disparity [B, 1, H, W]."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 192), processing_resolution: int = 384):
        super().__init__()
        self.config = SmallDepthNetConfig(tuple(channels), processing_resolution)
        self.encoders = nn.ModuleList()
        previous = 3
        for width in channels:
            self.encoders.append(_ResidualBlock(previous, width, stride=2))
            previous = width
        # The deepest stage sees the whole image at 384 px; dilation widens its context cheaply.
        self.context = nn.Sequential(
            nn.Conv2d(previous, previous, 3, padding=2, dilation=2), nn.SiLU(),
            nn.Conv2d(previous, previous, 3, padding=4, dilation=4), nn.SiLU(),
        )
        self.decoders = nn.ModuleList()
        for skip_width in reversed((3, *channels[:-1])):
            # At least 16 channels even at full resolution, where the skip is the 3-channel image.
            width = max(skip_width, 16)
            self.decoders.append(_ResidualBlock(previous + skip_width, width, stride=1))
            previous = width
        self.head = nn.Conv2d(previous, 1, 3, padding=1)

    @property
    def downscale_factor(self) -> int:
        return 2 ** len(self.config.channels)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.head.weight.dtype

    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype = torch.float32) -> SmallDepthNet:
        from safetensors.torch import load_file

        folder = Path(folder)
        stored = json.loads((folder / "config.json").read_text())
        known = {field.name for field in dataclasses.fields(SmallDepthNetConfig)}
        with torch.device("meta"):
            network = cls(**{key: value for key, value in stored.items() if key in known})
        network.load_state_dict(load_file(folder / WEIGHTS_FILE), strict=True, assign=True)
        return network.to(dtype)

    def save_pretrained(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / WEIGHTS_FILE) as staging:
            save_file({name: tensor.contiguous() for name, tensor in self.state_dict().items()}, staging)
        config = {"_class_name": CLASS_NAME, **dataclasses.asdict(self.config)}
        with atomic_path(folder / "config.json") as staging:
            staging.write_text(json.dumps(config, indent=2) + "\n")

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        skips = [image]
        features = image
        for encoder in self.encoders:
            features = encoder(features)
            skips.append(features)
        features = self.context(features) + features
        skips.pop()
        for decoder in self.decoders:
            skip = skips.pop()
            features = F.interpolate(features, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            features = decoder(torch.cat([features, skip], dim=1))
        return self.head(features)


class DefaultBaseModel:
    """`SmallDepthNet` behind the base-model interface: resize, pad, predict, resize back."""

    def __init__(self, network: SmallDepthNet, name: str, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.network = network.eval().requires_grad_(False).to(device)
        if dtype != self.network.dtype:
            self.network.to(dtype)
        self.name = name

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> DefaultBaseModel:
        folder = Path(folder)
        if not is_default_base_folder(folder):
            raise BetterDepthError(
                BetterDepthError.BAD_MODEL, f"'{folder}' is not a {CLASS_NAME} base model folder.",
                "Pass a folder written by `betterdepth train base` (config.json names SmallDepthNet).",
            )
        return cls(SmallDepthNet.from_pretrained(folder), str(folder), device, dtype)

    @torch.no_grad()
    def predict(self, image: LoadedImage) -> BasePrediction:
        device, dtype = self.network.device, self.network.dtype
        padded, padding = resize_and_pad(image_to_tensor(image.rgb).to(device),
                                         self.network.config.processing_resolution, self.network.downscale_factor)
        disparity = unpad(self.network(padded.to(dtype)).float(), padding)
        disparity = F.interpolate(disparity, size=(image.height, image.width), mode="bilinear", align_corners=False)
        disparity = disparity[0, 0].cpu().numpy().astype(np.float32)
        return BasePrediction(disparity=disparity, valid_mask=np.ones_like(disparity, dtype=bool))


def is_default_base_folder(folder: Path) -> bool:
    config = folder / "config.json"
    return config.exists() and json.loads(config.read_text()).get("_class_name") == CLASS_NAME
