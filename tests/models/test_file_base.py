"""FileBaseModel: precomputed base predictions from .npy, 16-bit .png and .exr files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.images import LoadedImage, load_image
from betterdepth_engine.models.file_base import FileBaseModel

HEIGHT, WIDTH = 5, 7


def _image(folder: Path, height: int = HEIGHT, width: int = WIDTH) -> LoadedImage:
    return LoadedImage(rgb=np.zeros((height, width, 3), np.uint8), path=folder / "photo.jpg")


def _ramp(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    return np.linspace(0.5, 3.0, height * width, dtype=np.float32).reshape(height, width)


def _write_exr(path: Path, channels: dict[str, np.ndarray]) -> None:
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, channels) as exr:
        exr.write(str(path))


def _predict(folder: Path, space: str = "disparity", **image_size):
    return FileBaseModel(folder, space=space).predict(_image(folder, **image_size))


def _error(folder: Path, space: str = "disparity", **image_size) -> BetterDepthError:
    with pytest.raises(BetterDepthError) as error:
        _predict(folder, space, **image_size)
    assert error.value.hint
    return error.value


# --- formats ---


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_npy_round_trip(tmp_path, dtype):
    values = (_ramp() * 10).astype(dtype)
    np.save(tmp_path / "photo.npy", values)
    prediction = _predict(tmp_path)
    assert prediction.disparity.dtype == np.float32 and prediction.valid_mask.all()
    np.testing.assert_array_equal(prediction.disparity, values.astype(np.float32))


def test_npy_with_a_trailing_channel_axis(tmp_path):
    np.save(tmp_path / "photo.npy", _ramp()[:, :, None])
    np.testing.assert_array_equal(_predict(tmp_path).disparity, _ramp())


def test_png16_round_trip(tmp_path):
    values = np.arange(HEIGHT * WIDTH, dtype=np.uint16).reshape(HEIGHT, WIDTH) * 1000
    Image.fromarray(values).save(tmp_path / "photo.png")
    np.testing.assert_array_equal(_predict(tmp_path).disparity, values.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_exr_single_channel_round_trip(tmp_path, dtype):
    _write_exr(tmp_path / "photo.exr", {"disparity": _ramp().astype(dtype)})
    np.testing.assert_array_equal(_predict(tmp_path).disparity, _ramp().astype(dtype).astype(np.float32))


def test_exr_prefers_the_depth_channel_over_colour(tmp_path):
    depth = _ramp()
    _write_exr(tmp_path / "photo.exr", {"R": depth * 0, "G": depth * 0, "B": depth * 0, "Z": depth})
    np.testing.assert_allclose(_predict(tmp_path, space="depth").disparity, 1 / depth, rtol=1e-6)


def test_exr_layered_channel_names_as_blender_writes_them(tmp_path):
    depth = _ramp()
    channels = {f"ViewLayer.Combined.{c}": depth * 0 for c in "RGBA"} | {"ViewLayer.Depth.Z": depth}
    _write_exr(tmp_path / "photo.exr", channels)
    np.testing.assert_allclose(_predict(tmp_path, space="depth").disparity, 1 / depth, rtol=1e-6)


def test_exr_without_a_recognisable_channel_is_bad_depth(tmp_path):
    _write_exr(tmp_path / "photo.exr", {"foo": _ramp(), "bar": _ramp()})
    error = _error(tmp_path)
    assert error.code == BetterDepthError.BAD_DEPTH
    assert "bar, foo" in error.message


def test_npy_is_preferred_over_png_over_exr(tmp_path):
    np.save(tmp_path / "photo.npy", np.full((HEIGHT, WIDTH), 1.0, np.float32))
    Image.fromarray(np.full((HEIGHT, WIDTH), 2, np.uint16)).save(tmp_path / "photo.png")
    _write_exr(tmp_path / "photo.exr", {"Y": np.full((HEIGHT, WIDTH), 3.0, np.float32)})
    assert _predict(tmp_path).disparity[0, 0] == 1.0
    (tmp_path / "photo.npy").unlink()
    assert _predict(tmp_path).disparity[0, 0] == 2.0
    (tmp_path / "photo.png").unlink()
    assert _predict(tmp_path).disparity[0, 0] == 3.0


# --- spaces and invalid values ---


def test_depth_is_converted_to_disparity(tmp_path):
    depth = _ramp()
    np.save(tmp_path / "photo.npy", depth)
    prediction = _predict(tmp_path, space="depth")
    np.testing.assert_allclose(prediction.disparity, 1 / depth, rtol=1e-6)
    assert prediction.valid_mask.all()


def test_depth_special_values(tmp_path):
    depth = _ramp().astype(np.float64)
    depth[0, :6] = [np.inf, 0.0, -2.0, np.nan, -np.inf, 1e-300]
    np.save(tmp_path / "photo.npy", depth)
    prediction = _predict(tmp_path, space="depth")
    # inf is infinitely far: disparity 0 and valid; 0, negative, NaN and -inf are missing data; 1e-300 m
    # would be a disparity beyond float32.
    np.testing.assert_array_equal(prediction.valid_mask[0, :6], [True, False, False, False, False, False])
    np.testing.assert_array_equal(prediction.disparity[0, :6], 0.0)
    assert prediction.valid_mask[1:].all() and np.isfinite(prediction.disparity).all()


def test_zero_in_a_depth_png_is_missing(tmp_path):
    depth = np.full((HEIGHT, WIDTH), 5000, np.uint16)
    depth[2, 3] = 0
    Image.fromarray(depth).save(tmp_path / "photo.png")
    prediction = _predict(tmp_path, space="depth")
    assert not prediction.valid_mask[2, 3] and prediction.valid_mask.sum() == HEIGHT * WIDTH - 1
    np.testing.assert_allclose(prediction.disparity[0, 0], 1 / 5000)


def test_disparity_special_values(tmp_path):
    disparity = _ramp()
    disparity[0, :5] = [np.nan, np.inf, -np.inf, -3.0, 0.0]
    np.save(tmp_path / "photo.npy", disparity)
    prediction = _predict(tmp_path)
    # Affine-invariant disparity may be negative or zero; only non-finite values are invalid.
    np.testing.assert_array_equal(prediction.valid_mask[0, :5], [False, False, False, True, True])
    np.testing.assert_array_equal(prediction.disparity[0, :5], [0.0, 0.0, 0.0, -3.0, 0.0])


@pytest.mark.parametrize("space", ["disparity", "depth"])
def test_all_invalid_is_bad_depth(tmp_path, space):
    np.save(tmp_path / "photo.npy", np.full((HEIGHT, WIDTH), np.nan, np.float32))
    assert _error(tmp_path, space).code == BetterDepthError.BAD_DEPTH


def test_all_zero_depth_is_bad_depth(tmp_path):
    Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint16)).save(tmp_path / "photo.png")
    assert _error(tmp_path, "depth").code == BetterDepthError.BAD_DEPTH


# --- user errors ---


def test_missing_file_names_every_path_tried(tmp_path):
    error = _error(tmp_path)
    assert error.code == BetterDepthError.BASE_FILE_MISSING
    for suffix in (".npy", ".png", ".exr"):
        assert str(tmp_path / f"photo{suffix}") in error.message


def test_missing_folder(tmp_path):
    with pytest.raises(BetterDepthError) as error:
        FileBaseModel(tmp_path / "nowhere")
    assert error.value.code == BetterDepthError.BASE_FILE_MISSING


def test_unknown_space_is_bad_input(tmp_path):
    with pytest.raises(BetterDepthError) as error:
        FileBaseModel(tmp_path, space="inverse")
    assert error.value.code == BetterDepthError.BAD_INPUT


def test_image_without_a_file_name_is_bad_input(tmp_path):
    with pytest.raises(BetterDepthError) as error:
        FileBaseModel(tmp_path).predict(LoadedImage(rgb=np.zeros((HEIGHT, WIDTH, 3), np.uint8)))
    assert error.value.code == BetterDepthError.BAD_INPUT


@pytest.mark.parametrize("shape", [(HEIGHT + 1, WIDTH), (WIDTH, HEIGHT)])
def test_wrong_size_names_both_sizes(tmp_path, shape):
    np.save(tmp_path / "photo.npy", np.ones(shape, np.float32))
    error = _error(tmp_path)
    assert error.code == BetterDepthError.BASE_FILE_MISMATCH
    assert f"{shape[1]}x{shape[0]}" in error.message and f"{WIDTH}x{HEIGHT}" in error.message
    assert "EXIF" in error.hint


def test_size_is_checked_after_exif_rotation(tmp_path):
    # A 40x30 JPEG tagged "rotate 90" is a 30x40 (width x height) image as viewers and the engine show it.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 30), "gray").save(tmp_path / "photo.jpg", exif=exif)
    image = load_image(tmp_path / "photo.jpg")
    model = FileBaseModel(tmp_path)
    np.save(tmp_path / "photo.npy", np.ones((30, 40), np.float32))  # the stored, unrotated size
    with pytest.raises(BetterDepthError) as error:
        model.predict(image)
    assert error.value.code == BetterDepthError.BASE_FILE_MISMATCH
    np.save(tmp_path / "photo.npy", np.ones((40, 30), np.float32))
    assert model.predict(image).disparity.shape == (40, 30)


def test_three_channel_array_is_bad_depth(tmp_path):
    np.save(tmp_path / "photo.npy", np.ones((HEIGHT, WIDTH, 3), np.float32))
    assert _error(tmp_path).code == BetterDepthError.BAD_DEPTH


@pytest.mark.parametrize("values", [np.ones((HEIGHT, WIDTH), bool), np.ones((HEIGHT, WIDTH), complex)])
def test_non_numeric_npy_is_bad_depth(tmp_path, values):
    np.save(tmp_path / "photo.npy", values)
    assert _error(tmp_path).code == BetterDepthError.BAD_DEPTH


def test_pickled_npy_is_refused(tmp_path):
    np.save(tmp_path / "photo.npy", np.array([{"not": "an array"}], dtype=object), allow_pickle=True)
    assert _error(tmp_path).code == BetterDepthError.BAD_DEPTH


def test_8bit_png_is_refused_with_a_hint(tmp_path):
    Image.fromarray(np.full((HEIGHT, WIDTH), 128, np.uint8)).save(tmp_path / "photo.png")
    error = _error(tmp_path)
    assert error.code == BetterDepthError.BAD_DEPTH
    assert "8-bit" in error.message and "16-bit" in error.hint


def test_colour_png_is_refused(tmp_path):
    Image.new("RGB", (WIDTH, HEIGHT), "red").save(tmp_path / "photo.png")
    assert _error(tmp_path).code == BetterDepthError.BAD_DEPTH


@pytest.mark.parametrize("suffix", [".npy", ".png", ".exr"])
def test_corrupt_file_is_bad_depth(tmp_path, suffix):
    (tmp_path / f"photo{suffix}").write_bytes(b"\x00garbage" * 10)
    error = _error(tmp_path)
    assert error.code == BetterDepthError.BAD_DEPTH
    assert f"photo{suffix}" in error.message
