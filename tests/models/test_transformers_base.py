"""TransformersDepthModel on tiny Depth Anything / DPT models saved in transformers format, fully offline."""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.images import LoadedImage, load_image
from betterdepth_engine.models.transformers_base import TransformersDepthModel
from tests.conftest import random_rgb
from tests.tiny_models import build_tiny_depth_anything

MODEL_FIXTURES = ["tiny_depth_anything_dir", "tiny_dpt_dir"]


@pytest.fixture(params=MODEL_FIXTURES)
def model_dir(request) -> Path:
    return request.getfixturevalue(request.param)


def _image(height: int, width: int, seed: int = 0) -> LoadedImage:
    return LoadedImage(rgb=random_rgb(height, width, seed))


def _transformers_directly(folder: Path, rgb: np.ndarray) -> np.ndarray:
    """The reference: processor + model + bilinear resize to the input size, written out by hand."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    processor = AutoImageProcessor.from_pretrained(folder)
    model = AutoModelForDepthEstimation.from_pretrained(folder).eval()
    with torch.no_grad():
        output = model(**processor(images=rgb, return_tensors="pt")).predicted_depth
    resized = F.interpolate(output[:, None], size=rgb.shape[:2], mode="bilinear", align_corners=False)
    return resized[0, 0].numpy()


@pytest.mark.parametrize("size", [(37, 53), (53, 37), (64, 64), (5, 3)])
def test_disparity_is_float32_at_input_resolution(model_dir, size):
    model = TransformersDepthModel.from_pretrained(model_dir)
    prediction = model.predict(_image(*size))
    assert prediction.disparity.shape == size
    assert prediction.disparity.dtype == np.float32
    assert np.isfinite(prediction.disparity).all()
    assert prediction.valid_mask.dtype == bool and prediction.valid_mask.all()
    assert model.output_space == "disparity"
    assert model.name == str(model_dir)


def test_output_varies_and_is_deterministic(model_dir):
    image = _image(37, 53)
    first = TransformersDepthModel.from_pretrained(model_dir).predict(image).disparity
    again = TransformersDepthModel.from_pretrained(model_dir).predict(image).disparity
    np.testing.assert_array_equal(first, again)
    # The tiny models are built to give a varied positive map, so the comparisons here are not vacuous.
    assert first.min() > 0 and first.std() > 0.01 * first.mean()


def test_matches_transformers_run_directly(model_dir, photo_path):
    image = load_image(photo_path)
    ours = TransformersDepthModel.from_pretrained(model_dir).predict(image).disparity
    np.testing.assert_allclose(ours, _transformers_directly(model_dir, image.rgb), rtol=1e-5, atol=1e-6)


def test_depth_anything_runs_at_a_multiple_of_14_keeping_the_aspect_ratio(tiny_depth_anything_dir):
    model = TransformersDepthModel.from_pretrained(tiny_depth_anything_dir)
    pixel_values = model.processor(images=random_rgb(37, 53), return_tensors="pt")["pixel_values"]
    height, width = pixel_values.shape[-2:]
    assert height % 14 == 0 and width % 14 == 0
    assert abs(width / height - 53 / 37) < 0.2


def test_metric_depth_anything_is_converted_to_disparity(tiny_metric_depth_anything_dir):
    model = TransformersDepthModel.from_pretrained(tiny_metric_depth_anything_dir)
    assert model.output_space == "depth"
    image = _image(37, 53)
    depth = _transformers_directly(tiny_metric_depth_anything_dir, image.rgb)
    assert depth.min() > 0 and depth.std() > 0.01 * depth.mean()
    prediction = model.predict(image)
    np.testing.assert_allclose(prediction.disparity, 1.0 / depth, rtol=1e-5)
    assert prediction.valid_mask.all()


def test_metric_depth_of_zero_is_invalid(tiny_metric_depth_anything_dir):
    model = TransformersDepthModel.from_pretrained(tiny_metric_depth_anything_dir)
    prediction = model._to_disparity(np.array([[0.0, 2.0], [np.nan, 4.0]], dtype=np.float32))
    np.testing.assert_array_equal(prediction.valid_mask, [[False, True], [False, True]])
    np.testing.assert_array_equal(prediction.disparity, np.array([[0.0, 0.5], [0.0, 0.25]], dtype=np.float32))
    with torch.no_grad():  # drive the sigmoid head to depth 0 everywhere
        model.model.head.conv3.bias.fill_(-1e4)
    with pytest.raises(BetterDepthError) as error:
        model.predict(_image(37, 53))
    assert error.value.code == BetterDepthError.BAD_DEPTH


def test_batch_equals_single_predictions_in_order(model_dir):
    model = TransformersDepthModel.from_pretrained(model_dir)
    images = [_image(37, 53, seed=1), _image(20, 30, seed=2), _image(37, 53, seed=3)]
    batch = model.predict_batch(images)
    assert [p.disparity.shape for p in batch] == [(37, 53), (20, 30), (37, 53)]
    for image, prediction in zip(images, batch):
        np.testing.assert_allclose(prediction.disparity, model.predict(image).disparity, rtol=1e-4, atol=1e-5)


def test_float16_model_returns_float32(tiny_depth_anything_dir):
    if not torch.cuda.is_available():
        pytest.skip("float16 inference is for CUDA")
    model = TransformersDepthModel.from_pretrained(tiny_depth_anything_dir, device="cuda")
    assert model.model.dtype == torch.float16
    prediction = model.predict(_image(37, 53))
    reference = TransformersDepthModel.from_pretrained(tiny_depth_anything_dir).predict(_image(37, 53))
    assert prediction.disparity.dtype == np.float32
    np.testing.assert_allclose(prediction.disparity, reference.disparity, rtol=2e-2, atol=1e-2)


# --- errors: always a BetterDepthError with a stable code, never a traceback from transformers ---


def _load_error(source) -> BetterDepthError:
    with pytest.raises(BetterDepthError) as error:
        TransformersDepthModel.from_pretrained(source)
    assert error.value.hint
    return error.value


def test_missing_folder_is_model_not_found(tmp_path):
    error = _load_error(tmp_path / "no_such_model")
    assert error.code == BetterDepthError.MODEL_NOT_FOUND
    assert "no_such_model" in error.message


def test_file_instead_of_folder_is_bad_model(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"not a model")
    assert _load_error(path).code == BetterDepthError.BAD_MODEL


def test_folder_without_config_is_bad_model(tmp_path):
    error = _load_error(tmp_path)
    assert error.code == BetterDepthError.BAD_MODEL
    assert "config.json" in error.message


def test_malformed_config_is_bad_model(tmp_path):
    (tmp_path / "config.json").write_text("{ not json")
    assert _load_error(tmp_path).code == BetterDepthError.BAD_MODEL


def test_config_of_another_kind_is_bad_model(tmp_path):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37).save_pretrained(
        tmp_path
    )
    error = _load_error(tmp_path)
    assert error.code == BetterDepthError.BAD_MODEL
    assert "'bert'" in error.message


@pytest.mark.parametrize("remove", ["preprocessor_config.json", "model.safetensors"])
def test_incomplete_model_folder_is_bad_model(tiny_depth_anything_dir, tmp_path, remove):
    folder = shutil.copytree(tiny_depth_anything_dir, tmp_path / "model")
    (folder / remove).unlink()
    assert _load_error(folder).code == BetterDepthError.BAD_MODEL


def test_weights_that_do_not_fit_the_config_are_bad_model(tiny_depth_anything_dir, tmp_path):
    folder = shutil.copytree(tiny_depth_anything_dir, tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config["fusion_hidden_size"] = 24
    (folder / "config.json").write_text(json.dumps(config))
    assert _load_error(folder).code == BetterDepthError.BAD_MODEL


def test_invalid_source_is_model_not_found_without_network():
    error = _load_error("not a folder nor a hub id")
    assert error.code == BetterDepthError.MODEL_NOT_FOUND


def test_unknown_hub_id_offline_is_model_not_found_quickly(empty_hub_cache, monkeypatch):
    import transformers.models.auto  # noqa: F401  (import time is not what is measured)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    error = _load_error("nobody-here/no-such-depth-model")
    assert time.perf_counter() - start < 5
    assert error.code == BetterDepthError.MODEL_NOT_FOUND
    assert "hf download nobody-here/no-such-depth-model" in error.hint


def test_cached_hub_model_loads_without_network(empty_hub_cache, monkeypatch):
    # Lay the tiny model out as `hf download` would leave it in the cache.
    revision = "0" * 40
    repo = empty_hub_cache / "models--tiny-org--tiny-depth-anything"
    build_tiny_depth_anything(repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    network_attempts = []

    def no_network(*args, **kwargs):
        network_attempts.append(args)
        raise OSError("network disabled in this test")

    # Every connection starts with a name lookup or a connect; refuse both and record that one was tried.
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    model = TransformersDepthModel.from_pretrained("tiny-org/tiny-depth-anything")
    # At most huggingface_hub's own once-per-process lookup (its agent registry, best effort, no retries);
    # fetching model files would take one attempt per file and retry for ~20 s.
    assert len(network_attempts) <= 1
    assert model.predict(_image(20, 30)).disparity.shape == (20, 30)
