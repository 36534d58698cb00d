"""One depth-file module: every format the engine writes reads back through every reader, values and invalid
pixels intact; 8-bit PNGs are refused the same way everywhere."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from betterdepth_engine import cli, depthfile
from betterdepth_engine.commands.estimate import write_result
from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.eval.datasets import FolderDataset
from betterdepth_engine.images import LoadedImage
from betterdepth_engine.models.file_base import FileBaseModel
from betterdepth_engine.pipeline import DepthResult
from tests.recon.scenes import sphere_on_wall

HEIGHT, WIDTH = 24, 32
FORMATS = {"npy": "_disparity.npy", "png16": "_disparity.png", "exr": "_disparity.exr"}


@pytest.fixture(scope="module")
def disparity():
    values = (sphere_on_wall(HEIGHT, WIDTH) * 3.0 + 0.25).astype(np.float32)
    values[:5, :7] = np.nan  # invalid: NaN in memory, 0 in the engine's 16-bit PNG
    values[-3:, -4:] = np.nan
    return values


@pytest.fixture(scope="module")
def estimate_files(disparity, tmp_path_factory):
    """The files `betterdepth estimate --formats png16,exr` writes for this disparity, and its metadata."""
    out = tmp_path_factory.mktemp("estimate")
    image = LoadedImage(rgb=np.zeros((HEIGHT, WIDTH, 3), np.uint8), path=out / "photo.jpg")
    result = DepthResult(disparity, disparity, np.isfinite(disparity), None)
    write_result(out, image, result, ["png16", "exr"])
    return out, json.loads((out / "photo_meta.json").read_text())


def _as_written(fmt: str, values: np.ndarray, metadata: dict) -> np.ndarray:
    """What a reader should return for a file of this format: the values, quantised for the 16-bit PNG."""
    if fmt != "png16":
        return values
    low, high = metadata["png16"]["value_at_1"], metadata["png16"]["value_at_65535"]
    return np.round(1 + (values - low) / (high - low) * 65534)


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_depth_file_returns_values_and_invalid_pixels(fmt, disparity, estimate_files):
    out, metadata = estimate_files
    values = depthfile.read_depth_file(out / f"photo{FORMATS[fmt]}")
    np.testing.assert_array_equal(np.isnan(values), np.isnan(disparity))
    np.testing.assert_array_equal(values, _as_written(fmt, disparity.astype(np.float64), metadata))
    if fmt == "png16":  # the recorded range maps the integers back to within one quantisation step
        span = np.nanmax(disparity) - np.nanmin(disparity)
        restored = depthfile.from_png16_range(values, metadata["png16"])
        np.testing.assert_allclose(restored, disparity, atol=span / 65534, equal_nan=True)


@pytest.mark.parametrize("fmt", FORMATS)
def test_base_dir_reads_them_with_the_same_invalid_mask(fmt, disparity, estimate_files, tmp_path):
    out, metadata = estimate_files
    (tmp_path / f"photo{FORMATS[fmt][-4:]}").write_bytes((out / f"photo{FORMATS[fmt]}").read_bytes())
    image = LoadedImage(rgb=np.zeros((HEIGHT, WIDTH, 3), np.uint8), path=tmp_path / "photo.jpg")
    prediction = FileBaseModel(tmp_path).predict(image)
    np.testing.assert_array_equal(prediction.valid_mask, np.isfinite(disparity))
    expected = _as_written(fmt, np.nan_to_num(disparity), metadata).astype(np.float32)
    np.testing.assert_array_equal(prediction.disparity[prediction.valid_mask], expected[prediction.valid_mask])


def test_mesh_gets_the_same_geometry_from_every_format(disparity, estimate_files, tmp_path):
    # The bug this guards: 0 (invalid) in the engine's own 16-bit PNG came back as far-plane geometry.
    out, _ = estimate_files
    counts = {}
    for fmt, suffix in FORMATS.items():
        target = tmp_path / fmt
        assert cli.main(["mesh", str(out / f"photo{suffix}"), "-o", str(target), "--focal-px", "40"]) == 0
        counts[fmt] = json.loads((target / "photo_mesh.json").read_text())["counts"]
    assert counts["png16"] == counts["npy"] == counts["exr"]
    assert counts["npy"]["vertices"] <= np.isfinite(disparity).sum()  # the invalid corners have no geometry


@pytest.mark.parametrize("fmt", FORMATS)
def test_evaluation_folders_read_them_with_the_same_invalid_mask(fmt, tmp_path):
    depth_m = sphere_on_wall(HEIGHT, WIDTH) + 1.0
    depth_m[2:6, 3:9] = np.nan
    (tmp_path / "images").mkdir()
    (tmp_path / "depth").mkdir()
    Image.new("RGB", (WIDTH, HEIGHT)).save(tmp_path / "images" / "a.png")
    path = tmp_path / "depth" / f"a{FORMATS[fmt][-4:]}"
    if fmt == "png16":  # millimetres, 0 = no measurement, as depth sensors write them
        Image.fromarray(np.where(np.isfinite(depth_m), np.round(depth_m * 1000), 0).astype(np.uint16)).save(path)
    else:
        {"npy": depthfile.write_npy, "exr": depthfile.write_exr}[fmt](path, depth_m)
    sample = FolderDataset(tmp_path)[0]
    np.testing.assert_array_equal(sample.valid_mask, np.isfinite(depth_m))
    np.testing.assert_allclose(sample.depth_m[sample.valid_mask], depth_m[np.isfinite(depth_m)], atol=5e-4)


def test_8bit_png_is_refused_the_same_way_by_every_reader(tmp_path, capsys):
    eight_bit = np.full((HEIGHT, WIDTH), 128, np.uint8)
    (tmp_path / "images").mkdir()
    (tmp_path / "depth").mkdir()
    Image.new("RGB", (WIDTH, HEIGHT)).save(tmp_path / "images" / "photo.png")
    Image.fromarray(eight_bit).save(tmp_path / "depth" / "photo.png")
    errors = []
    for read in (
        lambda: depthfile.read_depth_file(tmp_path / "depth" / "photo.png"),
        lambda: FileBaseModel(tmp_path / "depth").predict(
            LoadedImage(rgb=np.zeros((HEIGHT, WIDTH, 3), np.uint8), path=tmp_path / "images" / "photo.png")),
        lambda: FolderDataset(tmp_path)[0],
    ):
        with pytest.raises(BetterDepthError) as error:
            read()
        errors.append(error.value)
    assert cli.main(["mesh", str(tmp_path / "depth" / "photo.png"), "-o", str(tmp_path / "out")]) == 2
    assert "8-bit PNG" in capsys.readouterr().err
    assert all(e.code == BetterDepthError.BAD_DEPTH and "8-bit PNG" in e.message for e in errors)
    assert len({e.hint for e in errors}) == 1


def test_exr_channels_are_chosen_in_one_documented_order(tmp_path):
    import OpenEXR

    ramp = np.linspace(1, 2, HEIGHT * WIDTH, dtype=np.float32).reshape(HEIGHT, WIDTH)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {"R": ramp * 0, "G": ramp * 0, "B": ramp * 0, "ViewLayer.Depth.Z": ramp}).write(
        str(tmp_path / "render.exr"))
    np.testing.assert_array_equal(depthfile.read_depth_file(tmp_path / "render.exr"), ramp)
    assert depthfile.EXR_CHANNELS[:3] == ("depth", "disparity", "z")
