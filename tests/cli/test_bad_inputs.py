"""Every defect a new user hit: clashing names, bad settings, bad images, bad output folders, a failure inside a
batch. Each ends in a clear error (exit 2, no traceback) with nothing written, or fails only its own image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from betterdepth_engine.cli import main
from betterdepth_engine.pipeline import BetterDepthPipeline


@pytest.fixture
def models(tiny_base_dir, tiny_refiner_dir):
    return ["--base", str(tiny_base_dir), "--refiner", str(tiny_refiner_dir), "-q"]


def _save(path, height=40, width=60, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)).save(path)
    return path


def _refused(argv, capsys, code):
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert f"[{code}]" in error and "Traceback" not in error
    return error


@pytest.mark.parametrize("names", [("pic.jpg", "pic.png"), ("a/pic.jpg", "b/pic.jpg"), ("Pic.jpg", "b/pic.png")])
def test_inputs_with_one_stem_are_refused_up_front(tmp_path, models, capsys, names):
    paths = [_save(tmp_path / name) for name in names]
    out = tmp_path / "out"
    error = _refused(["estimate", *map(str, paths), "-o", str(out), *models], capsys, "BAD_INPUT")
    assert all(str(path) in error for path in paths)
    assert not out.exists()


def test_the_same_file_named_twice_is_processed_once(tmp_path, models):
    path = _save(tmp_path / "pic.jpg")
    assert main(["estimate", str(path), str(tmp_path), "-o", str(tmp_path / "out"), *models]) == 0
    assert (tmp_path / "out" / "pic_disparity.npy").exists()


@pytest.mark.parametrize("setting", [
    ["--processing-resolution", "1"],
    ["--processing-resolution", "7"],
    ["--processing-resolution", "-5"],
    ["--formats", "png16,bogus"],
    ["--mesh", "stl"],
    ["--far-near-ratio", "1"],
    ["--steps", "0"],
    ["--batch-size", "0"],
])
def test_bad_settings_are_refused_before_any_work(tmp_path, models, capsys, setting):
    out = tmp_path / "out"
    _refused(["estimate", str(_save(tmp_path / "pic.jpg")), "-o", str(out), *models, *setting], capsys,
             "BAD_INPUT")
    assert not out.exists()


@pytest.mark.parametrize("size, expected", [
    ((10, 16000), "aspect ratio"),  # height, width: at the base's resolution the short side would be 0 px
    ((1, 1), "smallest accepted is 8 px"),
    ((30, 16500), "Downscale"),  # over the size limit: the hint says what to do about it
])
def test_bad_images_fail_alone_and_clearly(tmp_path, models, capsys, size, expected):
    out = tmp_path / "out"
    path = _save(tmp_path / "odd.png", *size)
    error = _refused(["estimate", str(path), "-o", str(out), "--formats", "side-by-side", *models], capsys,
                     "BAD_IMAGE")
    assert expected in error and "mesh" not in error
    assert not out.exists()


@pytest.mark.parametrize("under", ["a_file", "a_file/below"])
def test_output_folder_problems_are_found_before_any_image(tmp_path, models, capsys, under):
    (tmp_path / "a_file").write_text("not a folder")
    bad_image = tmp_path / "broken.jpg"
    bad_image.write_bytes(b"not a jpeg")  # would fail if it were processed
    error = _refused(["estimate", str(bad_image), "-o", str(tmp_path / under), *models], capsys, "OUTPUT_ERROR")
    assert "BAD_IMAGE" not in error


def test_an_unexpected_exception_fails_only_its_image(tmp_path, models, capsys, monkeypatch):
    # Fault injection: the real pipeline, with a MemoryError for one image (the batch used to stop there).
    real_predict_base = BetterDepthPipeline.predict_base

    def predict_base(self, image, on_progress=None):
        if image.stem == "b":
            raise MemoryError("injected")
        return real_predict_base(self, image, on_progress)

    monkeypatch.setattr(BetterDepthPipeline, "predict_base", predict_base)
    folder = tmp_path / "shots"
    for seed, name in enumerate("abc"):
        _save(folder / f"{name}.png", seed=seed)
    out = tmp_path / "out"
    assert main(["estimate", str(folder), "-o", str(out), "--batch-size", "2", *models]) == 2
    error = capsys.readouterr().err
    assert "[MemoryError] b.png" in error and "1 of 3 image(s) failed" in error and "Traceback" not in error
    assert sorted(p.name for p in out.glob("*_meta.json")) == ["a_meta.json", "c_meta.json"]


@pytest.mark.parametrize("command", [["train", "base", "--steps", "1", "--output-dir"], ["eval", "--synthetic", "1", "-o"]])
def test_training_and_evaluation_check_their_output_folder_first(tmp_path, capsys, command):
    (tmp_path / "a_file").write_text("not a folder")
    _refused([*command, str(tmp_path / "a_file" / "run")], capsys, "OUTPUT_ERROR")
