"""Base models from transformers: Depth Anything V1/V2 and DPT (MiDaS), from a hub id or a local folder.

Relative models (Depth Anything, DPT) output unnormalised relative inverse depth, which is already the
affine-invariant disparity the pipeline wants. Depth Anything's "metric" variants (config
`depth_estimation_type="metric"`) output depth in metres instead; we return 1/depth for them, which is
disparity up to scale. Other depth models in transformers are refused rather than guessed at: ZoeDepth's
post-processing (padding removal) needs torchvision, and GLPN, Depth Pro and the rest are untested here.
Their predictions can still be used through precomputed files (`file_base.FileBaseModel`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.images import LoadedImage
from betterdepth_engine.models.base import BasePrediction
from betterdepth_engine.models.hub import resolve_model_folder

SUPPORTED_MODEL_TYPES = ("depth_anything", "dpt")


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _out_of_memory(device: torch.device, error: Exception) -> BetterDepthError:
    return BetterDepthError(
        BetterDepthError.OUT_OF_MEMORY,
        f"Out of memory on {device} with the base model: {_first_line(error)}",
        "Use a smaller image, close other programs using the GPU, or run on the CPU.",
    )


def _bad_model(source: str, why: str) -> BetterDepthError:
    return BetterDepthError(
        BetterDepthError.BAD_MODEL,
        f"'{source}' is not a usable base model: {why}",
        "Pass a Depth Anything or DPT model in transformers format (config.json, preprocessor_config.json and "
        "weights), e.g. the folder written by `hf download depth-anything/Depth-Anything-V2-Small-hf`.",
    )


@contextmanager
def _explain_load_errors(source: str, device: torch.device, what: str):
    """Turn whatever transformers/huggingface_hub raise while loading into a BetterDepthError."""
    try:
        yield
    except BetterDepthError:
        raise
    except torch.OutOfMemoryError as error:
        raise _out_of_memory(device, error) from None
    # The folder is local by now, so anything else (a missing file, malformed JSON, an unknown architecture,
    # weights that do not fit the config) means it is not a usable model; the loaders raise many types for that.
    except Exception as error:
        raise _bad_model(source, f"cannot load its {what}: {_first_line(error)}") from None


class TransformersDepthModel:
    """A transformers depth model returning affine-invariant disparity at the input image's resolution."""

    def __init__(self, name: str, model, processor, output_space: str):
        self.name = name
        self.model = model
        self.processor = processor
        # What the network itself outputs: "disparity" (relative inverse depth) or "depth" (metric variants).
        self.output_space = output_space

    @classmethod
    def from_pretrained(
        cls, source: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> TransformersDepthModel:
        """Load from a local folder in transformers format, or else from a hub id (local cache, then network).

        `dtype=None` picks float16 on CUDA (the models are trained to tolerate it; it halves time and memory)
        and float32 elsewhere, where half precision is slow or unsupported.
        """
        from transformers import AutoConfig, AutoImageProcessor, AutoModelForDepthEstimation

        device = torch.device(device)
        if dtype is None:
            dtype = torch.float16 if device.type == "cuda" else torch.float32
        source = str(source)
        path = Path(source).expanduser()
        if not path.exists():  # a hub id: from the cache, else one quick check and a download
            cls._check_hub_id(source)
            path = resolve_model_folder(source, "base model")
        cls._check_local_folder(path)
        location = str(path)

        with _explain_load_errors(source, device, "config.json"):
            config = AutoConfig.from_pretrained(location, local_files_only=True)
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise _bad_model(
                source,
                f"it is a '{config.model_type}' model; supported are {', '.join(SUPPORTED_MODEL_TYPES)}. For other "
                "depth models, save their predictions as files and use them as a precomputed base",
            )
        metric = getattr(config, "depth_estimation_type", "relative") == "metric"
        with _explain_load_errors(source, device, "image processor (preprocessor_config.json)"):
            processor = AutoImageProcessor.from_pretrained(location, local_files_only=True)
        with _explain_load_errors(source, device, "weights"):
            model = AutoModelForDepthEstimation.from_pretrained(
                location, local_files_only=True, config=config, dtype=dtype
            )
            model = model.to(device).eval()
        return cls(source, model, processor, output_space="depth" if metric else "disparity")

    @staticmethod
    def _check_hub_id(source: str) -> None:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            validate_repo_id(source)
        except HFValidationError:
            raise BetterDepthError(
                BetterDepthError.MODEL_NOT_FOUND,
                f"Base model '{source}' is neither an existing folder nor a valid Hugging Face hub id.",
                "Check the path, or give a hub id such as depth-anything/Depth-Anything-V2-Small-hf.",
            ) from None

    @staticmethod
    def _check_local_folder(path: Path) -> None:
        if not path.is_dir():
            raise _bad_model(str(path), "it is a file, not a folder")
        if not (path / "config.json").is_file():
            raise _bad_model(str(path), "the folder has no config.json")

    @property
    def device(self) -> torch.device:
        return self.model.device

    def predict(self, image: LoadedImage) -> BasePrediction:
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[LoadedImage]) -> list[BasePrediction]:
        """Predict several images, one forward pass per group of equal size (the processor cannot stack others)."""
        predictions: list[BasePrediction | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            groups.setdefault((image.height, image.width), []).append(index)
        for size, indices in groups.items():
            output = self._forward([images[i].rgb for i in indices], size)
            for i, values in zip(indices, output):
                predictions[i] = self._to_disparity(values)
        return predictions

    def _forward(self, rgbs: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        """Run the network on same-size RGB images; return its output (N x H x W, float32) at `size`."""
        inputs = self.processor(images=rgbs, return_tensors="pt", input_data_format="channels_last")
        pixel_values = inputs["pixel_values"].to(self.device, self.model.dtype)
        try:
            with torch.inference_mode():
                output = self.model(pixel_values=pixel_values).predicted_depth
        except torch.OutOfMemoryError as error:
            raise _out_of_memory(self.device, error) from None
        # Resize in float32; bilinear (not the processor's bicubic) so that edges do not overshoot into
        # values beyond their neighbours, which would become flying geometry in a mesh.
        output = F.interpolate(output.float().unsqueeze(1), size=size, mode="bilinear", align_corners=False)
        return output.squeeze(1).cpu().numpy()

    def _to_disparity(self, values: np.ndarray) -> BasePrediction:
        """The network's float32 output as disparity; NaN/inf (e.g. a float16 overflow) and depth <= 0 are invalid."""
        if self.output_space == "depth":
            valid = np.isfinite(values) & (values > 0)
            disparity = np.divide(1.0, values, out=np.zeros_like(values), where=valid)
            valid &= np.isfinite(disparity)  # a subnormal depth overflows to inf
        else:
            disparity = values
            valid = np.isfinite(disparity)
        if not valid.any():
            raise BetterDepthError(
                BetterDepthError.BAD_DEPTH,
                f"Base model '{self.name}' produced no usable values (all NaN, infinite or, as depth, <= 0).",
                "If it ran in float16, run it in float32 (or on the CPU).",
            )
        return BasePrediction(disparity=np.where(valid, disparity, 0.0).astype(np.float32), valid_mask=valid)
