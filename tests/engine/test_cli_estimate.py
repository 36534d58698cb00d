"""`betterdepth estimate` end to end on real files, including every kind of bad input."""

import json

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from betterdepth_engine.cli import main
from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.images import load_image


@pytest.fixture
def models(tiny_base_dir, tiny_refiner_dir):
    return ["--base", str(tiny_base_dir), "--refiner", str(tiny_refiner_dir), "--processing-resolution", "64", "-q"]


def test_estimate_writes_all_requested_outputs(tmp_path, photo_path, models):
    out = tmp_path / "out"
    code = main(["estimate", str(photo_path), "-o", str(out), "--ensemble-size", "2",
                 "--formats", "png16,exr,color,side-by-side", "--mesh", "ply,glb", *models])
    assert code == 0
    disparity = np.load(out / "photo_disparity.npy")
    base = np.load(out / "photo_base_disparity.npy")
    assert disparity.shape == base.shape == (50, 75) and disparity.dtype == np.float32
    assert np.load(out / "photo_uncertainty.npy").shape == (50, 75)
    meta = json.loads((out / "photo_meta.json").read_text())
    assert meta["ensemble_size"] == 2 and meta["width"] == 75 and "step_2" in meta["timings_s"]
    png = np.asarray(Image.open(out / "photo_disparity.png"))
    assert png.dtype == np.uint16 and png.shape == (50, 75)
    decoded = meta["png16"]["value_at_1"] + (png.astype(np.float64) - 1) / 65534 * (
        meta["png16"]["value_at_65535"] - meta["png16"]["value_at_1"])
    assert np.allclose(decoded, disparity, atol=1e-4 * np.ptp(disparity))
    with OpenEXR.File(str(out / "photo_disparity.exr")) as exr:
        assert np.array_equal(exr.channels()["Y"].pixels, disparity)
    assert Image.open(out / "photo_disparity_color.png").size == (75, 50)
    assert Image.open(out / "photo_side_by_side.png").mode == "RGB"
    assert (out / "photo_mesh.ply").exists() and (out / "photo_mesh.glb").exists()
    assert Image.open(out / "photo_side_by_side.png").size[0] > 4 * 75 * 384 / 50  # four panels
    assert not list(out.glob(".*partial*"))


def test_folder_input_with_one_bad_image_writes_the_good_ones_and_fails(tmp_path, photo_path, models, capsys):
    folder = tmp_path / "shots"
    folder.mkdir()
    Image.open(photo_path).save(folder / "good.png")
    (folder / "broken.jpg").write_bytes(photo_path.read_bytes()[:300])  # truncated JPEG
    out = tmp_path / "out"
    assert main(["estimate", str(folder), "-o", str(out), *models]) == 2
    error = capsys.readouterr().err
    assert "BAD_IMAGE" in error and "broken.jpg" in error and "1 of 2 image(s) failed" in error
    assert sorted(p.name for p in out.iterdir()) == ["good_base_disparity.npy", "good_disparity.npy", "good_meta.json"]


def _exif_rotated_jpeg(path, width=40, height=20):
    image = Image.new("RGB", (width, height), (200, 50, 50))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(path, exif=exif)


def test_accepted_odd_images_are_converted(tmp_path):
    cases = {
        "cmyk.jpg": lambda p: Image.new("CMYK", (10, 8), (0, 50, 100, 0)).save(p),
        "gray16.png": lambda p: Image.fromarray(np.full((8, 10), 40000, np.uint16)).save(p),
        "rgba.png": lambda p: Image.new("RGBA", (10, 8), (255, 0, 0, 0)).save(p),
        "palette.png": lambda p: Image.new("P", (10, 8)).save(p, transparency=0),
        "gray.bmp": lambda p: Image.new("L", (10, 8), 128).save(p),
    }
    for name, write in cases.items():
        write(tmp_path / name)
        image = load_image(tmp_path / name)
        assert image.rgb.shape == (8, 10, 3) and image.rgb.dtype == np.uint8, name
    assert load_image(tmp_path / "rgba.png").rgb[0, 0].tolist() == [255, 255, 255]  # transparent -> white
    assert load_image(tmp_path / "gray16.png").rgb[0, 0, 0] == round(40000 / 65535 * 255)
    _exif_rotated_jpeg(tmp_path / "rotated.jpg")
    rotated = load_image(tmp_path / "rotated.jpg")
    assert rotated.rgb.shape == (40, 20, 3) and "EXIF orientation" in rotated.notes[0]


def test_enormous_images_are_downscaled_or_refused(tmp_path):
    Image.new("L", (17000, 8)).save(tmp_path / "strip.png")
    with pytest.raises(BetterDepthError, match="largest accepted is 16384"):
        load_image(tmp_path / "strip.png")
    Image.new("RGB", (8000, 5200)).save(tmp_path / "big.png")
    big = load_image(tmp_path / "big.png")
    assert big.height * big.width <= 40_000_000 and "downscaled" in big.notes[-1]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.jpg", b"", "empty"),
    ("notes.jpg", b"this is not an image at all", "not a recognised image format"),
    ("cut.png", None, "corrupt or truncated"),
])
def test_unreadable_images_fail_with_bad_image_and_no_output(tmp_path, models, capsys, name, content, message):
    path = tmp_path / name
    if content is None:
        Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "whole.png")
        content = (tmp_path / "whole.png").read_bytes()[:60]
    path.write_bytes(content)
    out = tmp_path / "out"
    assert main(["estimate", str(path), "-o", str(out), *models]) == 2
    error = capsys.readouterr().err
    assert "BAD_IMAGE" in error and message in error and "Traceback" not in error
    assert not out.exists() or not any(out.iterdir())


def test_missing_and_wrong_kind_models(tmp_path, photo_path, tiny_base_dir, capsys):
    assert main(["estimate", str(photo_path), "-o", str(tmp_path), "--refiner", str(tmp_path / "nope")]) == 2
    assert "MODEL_NOT_FOUND" in capsys.readouterr().err
    assert main(["estimate", str(photo_path), "-o", str(tmp_path), "--base", str(tiny_base_dir),
                 "--refiner", str(tiny_base_dir)]) == 2
    assert "BAD_MODEL" in capsys.readouterr().err
    empty = tmp_path / "empty_model"
    empty.mkdir()
    assert main(["estimate", str(photo_path), "-o", str(tmp_path), "--base", str(empty), "--refiner", "none"]) == 2
    err = capsys.readouterr().err
    assert "BAD_MODEL" in err or "MODEL_NOT_FOUND" in err


def test_base_files_plug_in_any_model(tmp_path, photo_path, tiny_refiner_dir, capsys):
    preds = tmp_path / "preds"
    preds.mkdir()
    depth = np.linspace(1.0, 4.0, 50 * 75, dtype=np.float32).reshape(50, 75)
    np.save(preds / "photo.npy", depth)
    out = tmp_path / "out"
    args = ["estimate", str(photo_path), "-o", str(out), "--base-dir", str(preds), "--base-space", "depth",
            "--refiner", str(tiny_refiner_dir), "--processing-resolution", "64", "-q"]
    assert main(args) == 0
    assert np.allclose(np.load(out / "photo_base_disparity.npy"), 1.0 / depth)
    np.save(preds / "photo.npy", depth[:40])
    assert main(args) == 2
    assert "BASE_FILE_MISMATCH" in capsys.readouterr().err
    (preds / "photo.npy").unlink()
    assert main(args) == 2
    assert "BASE_FILE_MISSING" in capsys.readouterr().err


def test_bad_options_are_explained(tmp_path, photo_path, models, capsys):
    assert main(["estimate", str(photo_path), "-o", str(tmp_path), "--formats", "gif", *models]) == 2
    assert "Unknown output format" in capsys.readouterr().err
    assert main(["estimate", str(photo_path), "-o", str(tmp_path), "--dtype", "fp16", "--device", "cpu", *models]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err
    assert main(["estimate", str(photo_path), "-o", str(tmp_path / "o"), "--strength", "1.5", *models]) == 2
    assert "strength must be in (0, 1]" in capsys.readouterr().err
    assert main(["estimate", str(tmp_path / "missing.jpg"), "-o", str(tmp_path), *models]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_batched_folder_matches_one_by_one(tmp_path, photo_path, models):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        Image.open(photo_path).rotate(index * 5).save(folder / f"frame{index}.png")
    Image.open(photo_path).resize((40, 30)).save(folder / "small.png")  # another size: its own batch
    assert main(["estimate", str(folder), "-o", str(tmp_path / "batched"), "--batch-size", "4", *models]) == 0
    assert main(["estimate", str(folder), "-o", str(tmp_path / "single"), *models]) == 0
    for name in ("frame0", "frame1", "frame2", "small"):
        batched = np.load(tmp_path / "batched" / f"{name}_disparity.npy")
        single = np.load(tmp_path / "single" / f"{name}_disparity.npy")
        assert np.allclose(batched, single, atol=1e-4 * np.ptp(single))
    meta = json.loads((tmp_path / "batched" / "frame1_meta.json").read_text())
    assert meta["batch_size"] == 3 and "base" in meta["timings_s"]
