import numpy as np
import pytest
import torch

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.images import LoadedImage
from betterdepth_engine.models import loading
from betterdepth_engine.models.default_base import DefaultBaseModel
from betterdepth_engine.models.marigold_base import MarigoldBaseModel, marigold_depth_to_disparity
from tests.conftest import random_rgb


def test_marigold_adapter_is_diffusers_output_converted_to_disparity(tiny_marigold_dir):
    from diffusers import MarigoldDepthPipeline

    rgb = random_rgb(36, 52)
    adapter = loading.load_base_model(str(tiny_marigold_dir), depth_range_ratio=10.0, seed=3)
    assert isinstance(adapter, MarigoldBaseModel)
    prediction = adapter.predict(LoadedImage(rgb=rgb))
    pipeline = MarigoldDepthPipeline.from_pretrained(tiny_marigold_dir)
    pipeline.set_progress_bar_config(disable=True)
    depth_unit = pipeline(rgb, generator=torch.Generator().manual_seed(3), output_type="np").prediction[0, :, :, 0]
    assert prediction.disparity.shape == (36, 52) and prediction.valid_mask.all()
    assert np.allclose(prediction.disparity, marigold_depth_to_disparity(depth_unit, 10.0), atol=1e-5)
    # Explicit conversion: near (Marigold depth 0) is the largest disparity, far (1) the smallest.
    assert marigold_depth_to_disparity(np.array([0.0, 1.0]), 10.0).tolist() == pytest.approx([1.0, -1.0])


def test_folders_are_recognised_by_kind(tiny_base_dir, tiny_refiner_dir, tiny_marigold_dir):
    assert isinstance(loading.load_base_model(str(tiny_base_dir)), DefaultBaseModel)
    assert loading.load_refiner(str(tiny_refiner_dir)).uses_conditioning_channels
    assert not loading.load_refiner(str(tiny_marigold_dir)).uses_conditioning_channels
    assert loading.load_refiner("none") is None


def test_missing_default_weights_say_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(loading, "DEFAULT_WEIGHTS", tmp_path)
    with pytest.raises(BetterDepthError) as error:
        loading.load_refiner("default")
    assert error.value.code == "MODEL_NOT_FOUND" and "--refiner" in error.value.hint


def test_aliases_resolve_to_hub_ids_and_fail_offline_with_a_hint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert loading.BASE_ALIASES["depth-anything-v2-small"] == "depth-anything/Depth-Anything-V2-Small-hf"
    with pytest.raises(BetterDepthError) as error:
        loading.load_base_model("depth-anything-v2-small")
    assert error.value.code == "MODEL_NOT_FOUND"
