"""`betterdepth eval` end to end on a tiny folder dataset with tiny models."""

import argparse
import csv
import json

import numpy as np
import pytest
from PIL import Image

from betterdepth_engine.commands import evaluate
from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.eval import report
from tests.conftest import random_rgb


def run_eval(argv: list[str]) -> int:
    """Parse and run like `betterdepth eval ...` (without the CLI's error printing)."""
    parser = argparse.ArgumentParser()
    evaluate.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", *argv])
    return args.run(args)


@pytest.fixture
def folder_dataset(tmp_path):
    """Three 40 x 56 images with a wall, a box and holes in the ground truth; one is a JPEG, one has PNG depth."""
    root = tmp_path / "mine"
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    for index in range(3):
        depth = np.full((40, 56), 4.0 + index, np.float32)
        depth[10:30, 20:40] = 2.0
        depth[:3, :] = 0.0  # no measurement
        suffix = ".jpg" if index == 1 else ".png"
        Image.fromarray(random_rgb(40, 56, seed=index)).save(root / "images" / f"view{index}{suffix}")
        if index == 2:
            Image.fromarray((depth * 1000).astype(np.uint16)).save(root / "depth" / f"view{index}.png")
        else:
            np.save(root / "depth" / f"view{index}.npy", depth)
    return root


@pytest.fixture
def models(tiny_base_dir, tiny_refiner_dir):
    return ["--base", str(tiny_base_dir), "--refiner", str(tiny_refiner_dir), "--processing-resolution", "64", "-q"]


def test_eval_scores_base_and_refined_and_writes_reports(tmp_path, folder_dataset, models, capsys):
    out = tmp_path / "out"
    assert run_eval(["--folder", str(folder_dataset), "-o", str(out), "--steps", "1", "--strength", "0.8",
                     *models]) == 0

    table = capsys.readouterr().out
    assert "| | AbsRel % | δ1 % | boundary F1 | DBE acc (px) | DBE comp (px) |" in table
    assert "| base |" in table and "| refined |" in table

    results = json.loads((out / "metrics.json").read_text())
    assert results["dataset"] == {"name": "mine", "samples": 3, "failed": [], "limit": None}
    assert set(results["metrics"]) == {"base", "refined"}
    for values in results["metrics"].values():
        assert 0 <= values["abs_rel"] < 10 and 0 <= values["delta1"] <= 1
        assert values["dbe_completeness"] is None or 0 <= values["dbe_completeness"] <= 10
    assert results["settings"]["denoising_steps"] == 1 and results["settings"]["alignment"] == "disparity"
    assert results["settings"]["strength"] == 0.8
    assert results["images_per_metric"]["base"]["abs_rel"] == 3

    with open(out / "per_image.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["name"], row["variant"]) for row in rows] == [
        (f"view{i}{'.jpg' if i == 1 else '.png'}", variant) for i in range(3) for variant in ("base", "refined")]
    base_mean = np.mean([float(row["abs_rel"]) for row in rows if row["variant"] == "base"])
    assert base_mean == pytest.approx(results["metrics"]["base"]["abs_rel"], rel=1e-5)

    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.mode == "RGB"
    assert sheet.height == 18 + 3 * (report.PANEL_HEIGHT + 4)  # header + 3 rows (4 asked, 3 samples)
    assert sheet.width == 8 * round(56 * report.PANEL_HEIGHT / 40) + 7 * 4  # 5 panels + 3 (gray) normal panels


def test_eval_without_refiner_scores_the_base_alone_and_respects_limit(tmp_path, folder_dataset, tiny_base_dir,
                                                                        capsys):
    out = tmp_path / "out"
    argv = ["--folder", str(folder_dataset), "-o", str(out), "--base", str(tiny_base_dir), "--refiner", "none",
            "--limit", "2", "--alignment", "depth", "-q"]
    assert run_eval(argv) == 0
    assert "| refined |" not in capsys.readouterr().out
    results = json.loads((out / "metrics.json").read_text())
    assert set(results["metrics"]) == {"base"} and results["dataset"]["samples"] == 2
    assert results["settings"]["alignment"] == "depth"


def test_perfect_base_files_score_perfectly(tmp_path, folder_dataset):
    """A base that returns the true disparity (through the file base model) must get AbsRel 0 and delta1 1."""
    from betterdepth_engine.eval.datasets import FolderDataset
    from betterdepth_engine.eval.runner import evaluate_sample
    from betterdepth_engine.models.file_base import FileBaseModel
    from betterdepth_engine.pipeline import BetterDepthPipeline, RefineOptions

    dataset = FolderDataset(folder_dataset)
    sample = dataset[0]
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    np.save(base_dir / "view0.npy", np.where(sample.valid_mask, 5.0 / np.maximum(sample.depth_m, 1e-6) + 1, np.nan))
    pipeline = BetterDepthPipeline(FileBaseModel(base_dir), None)
    evaluation = evaluate_sample(pipeline, sample, RefineOptions(), dataset.protocol)
    scores = evaluation.metrics["base"]
    assert scores["abs_rel"] == pytest.approx(0, abs=1e-5) and scores["delta1"] == 1
    assert scores["boundary_f1"] == pytest.approx(1)
    # Float rounding through the file and the fit can flip a pixel at Canny's thresholds on exact synthetic edges.
    assert scores["dbe_accuracy"] < 0.25 and scores["dbe_completeness"] < 0.25


def test_bad_arguments_fail_with_clear_errors(tmp_path, folder_dataset, models):
    out = ["-o", str(tmp_path / "out")]
    with pytest.raises(BetterDepthError, match="needs --data-root"):
        run_eval(["--dataset", "nyu", *out, *models])
    with pytest.raises(BetterDepthError, match="go with --dataset"):
        run_eval(["--folder", str(folder_dataset), "--data-root", str(tmp_path), *out, *models])
    with pytest.raises(BetterDepthError, match="--limit must be at least 1"):
        run_eval(["--folder", str(folder_dataset), "--limit", "0", *out, *models])
    with pytest.raises(BetterDepthError, match="strength must be in"):
        run_eval(["--folder", str(folder_dataset), "--strength", "1.5", *out, *models])
    with pytest.raises(BetterDepthError, match="positive number of scenes"):
        run_eval(["--synthetic", "0", *out, *models])
    with pytest.raises(BetterDepthError, match="lacks an images/ or depth/"):
        run_eval(["--folder", str(tmp_path), *out, *models])
    with pytest.raises(SystemExit):  # argparse: the data sources exclude each other
        run_eval(["--folder", str(folder_dataset), "--synthetic", "2", *out, *models])
    assert not (tmp_path / "out").exists()


def test_a_broken_sample_is_reported_and_the_rest_evaluated(tmp_path, folder_dataset, models, capsys):
    (folder_dataset / "depth" / "view1.npy").write_bytes(b"not numpy")
    out = tmp_path / "out"
    assert run_eval(["--folder", str(folder_dataset), "-o", str(out), "--steps", "1", *models]) == 2
    assert "view1.jpg" in capsys.readouterr().err
    results = json.loads((out / "metrics.json").read_text())
    assert results["dataset"]["samples"] == 2 and results["dataset"]["failed"][0]["code"] == "BAD_DEPTH"


def test_spread_indices_cover_the_dataset():
    assert evaluate.spread_indices(10, 4) == {0, 3, 6, 9}
    assert evaluate.spread_indices(2, 4) == {0, 1}
    assert evaluate.spread_indices(5, 1) == {0} and evaluate.spread_indices(5, 0) == set()


def test_markdown_table_prints_percent_and_na():
    table = report.markdown_table({"base": {"abs_rel": 0.0431, "delta1": 0.98, "boundary_f1": float("nan"),
                                            "dbe_accuracy": 2.5, "dbe_completeness": 4.25}})
    assert table.splitlines()[-1] == "| base | 4.31 | 98.00 | n/a | 2.50 | 4.25 |"


def test_simulated_bases_are_ground_truth_of_known_quality(tmp_path, tiny_refiner_dir):
    """`--base simulated:KIND` degrades each scene's ground truth: mild is closer to it than blurry, and the
    refiner is run on exactly that conditioning."""
    scores = {}
    for kind in ("mild", "blurry"):
        out = tmp_path / kind
        assert run_eval(["--synthetic", "3", "--base", f"simulated:{kind}", "--refiner", str(tiny_refiner_dir),
                         "--processing-resolution", "64", "--steps", "1", "-q", "-o", str(out)]) == 0
        results = json.loads((out / "metrics.json").read_text())
        assert results["models"]["base"] == f"simulated:{kind}" and set(results["metrics"]) == {"base", "refined"}
        scores[kind] = results["metrics"]["base"]
    assert scores["mild"]["abs_rel"] < scores["blurry"]["abs_rel"] < 0.2
    assert scores["mild"]["boundary_f1"] > scores["blurry"]["boundary_f1"]
    with pytest.raises(BetterDepthError, match="Unknown simulated base 'sharp'"):
        run_eval(["--synthetic", "1", "--base", "simulated:sharp", "--refiner", "none", "-o", str(tmp_path / "x")])


def test_texture_copy_scenes_are_scored_for_normals_and_flatness(tmp_path, tiny_refiner_dir, capsys):
    """`--scene-kind texture_copy`: flat rooms with the true camera, so every variant gets normal error and
    flatness (per image and in the summary) and the second table is printed; the true depth scores 0."""
    out = tmp_path / "out"
    assert run_eval(["--synthetic", "2", "--scene-kind", "texture_copy", "--base", "simulated:blurry", "--refiner",
                     str(tiny_refiner_dir), "--processing-resolution", "64", "--steps", "1", "-q", "-o",
                     str(out)]) == 0
    printed = capsys.readouterr().out
    assert "synthetic-val-texture_copy: 2 image(s)" in printed
    assert "| | normal err (°) | < 11.25° % | < 30° % | flatness (°) |" in printed
    results = json.loads((out / "metrics.json").read_text())
    assert results["dataset"]["name"] == "synthetic-val-texture_copy"
    for variant in ("base", "refined"):
        assert results["images_per_metric"][variant]["flatness_deg"] == 2
        assert 0 < results["metrics"][variant]["normal_error_deg"] < 90
        assert 0 <= results["metrics"][variant]["normal_within_11_25"] <= results["metrics"][variant]["normal_within_30"] <= 1
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert [row["name"] for row in rows] == ["val_00000_texture_copy"] * 2 + ["val_00001_texture_copy"] * 2
    assert all(float(row["flatness_deg"]) > 0 for row in rows)
    with pytest.raises(BetterDepthError, match="--scene-kind goes with --synthetic"):
        run_eval(["--folder", str(tmp_path), "--scene-kind", "texture_copy", "-o", str(tmp_path / "x")])


def test_first_scene_evaluates_later_scenes_with_their_own_simulated_base(tmp_path):
    """`--first-scene 1 --synthetic 1` scores scene 1 exactly as `--synthetic 2` does (the simulated base is
    seeded by the scene's number), so held-out scene ranges can be evaluated alone."""
    common = ["--base", "simulated:blurry", "--refiner", "none", "-q"]
    assert run_eval(["--synthetic", "2", *common, "-o", str(tmp_path / "both")]) == 0
    assert run_eval(["--synthetic", "1", "--first-scene", "1", *common, "-o", str(tmp_path / "second")]) == 0
    both = list(csv.DictReader((tmp_path / "both" / "per_image.csv").open()))
    second = list(csv.DictReader((tmp_path / "second" / "per_image.csv").open()))
    assert [row["name"] for row in second] == [both[1]["name"]] and both[1]["name"].startswith("val_00001_")
    assert second[0] == both[1]
    assert json.loads((tmp_path / "second" / "metrics.json").read_text())["dataset"]["first_scene"] == 1
    with pytest.raises(BetterDepthError, match="--first-scene goes with --synthetic"):
        run_eval(["--folder", str(tmp_path), "--first-scene", "3", "-o", str(tmp_path / "x")])
    with pytest.raises(BetterDepthError, match="cannot be negative"):
        run_eval(["--synthetic", "1", "--first-scene", "-1", *common, "-o", str(tmp_path / "x")])


def test_autoencoder_round_trip_leaves_the_unet_out(tmp_path, tiny_base_dir, tiny_refiner_dir):
    import subprocess
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from autoencoder_round_trip import without_unet

    from betterdepth_engine.images import LoadedImage
    from betterdepth_engine.models.loading import load_base_model, load_refiner
    from betterdepth_engine.pipeline import BetterDepthPipeline, RefineOptions

    refiner = without_unet(load_refiner(str(tiny_refiner_dir)))
    refiner.unet.forward = None  # calling the U-Net would fail
    pipeline = BetterDepthPipeline(load_base_model(str(tiny_base_dir)), refiner)
    image = LoadedImage(rgb=random_rgb(48, 64))
    first, second = (pipeline(image, RefineOptions(processing_resolution=64, seed=seed)) for seed in (0, 1))
    np.testing.assert_array_equal(first.disparity, second.disparity)  # no noise is drawn into the result
    assert not np.allclose(first.disparity, first.base_disparity)  # but it did go through the autoencoder

    out = tmp_path / "round-trip"
    result = subprocess.run([sys.executable, "scripts/autoencoder_round_trip.py", str(out), "--scenes", "1",
                             "--base", str(tiny_base_dir), "--refiner", str(tiny_refiner_dir),
                             "--processing-resolution", "64"],
                            cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    written = json.loads((out / "metrics.json").read_text())
    assert written["models"]["refiner"].endswith("without its U-Net") and written["dataset"]["samples"] == 1
    assert set(written["metrics"]) == {"base", "refined"} and "| refined |" in result.stdout
    assert len((out / "per_image.csv").read_text().splitlines()) == 1 + 2  # header, base and round trip


def test_an_unexpected_exception_fails_only_its_sample(tmp_path, folder_dataset, models, capsys, monkeypatch):
    from betterdepth_engine.eval import runner

    real_evaluate_sample = runner.evaluate_sample

    def evaluate_sample(pipeline, sample, *args):  # fault injection around the real evaluation
        if sample.name.startswith("view1"):
            raise MemoryError("injected")
        return real_evaluate_sample(pipeline, sample, *args)

    monkeypatch.setattr(runner, "evaluate_sample", evaluate_sample)
    out = tmp_path / "out"
    assert run_eval(["--folder", str(folder_dataset), "-o", str(out), "--steps", "1", *models]) == 2
    assert "[MemoryError] sample 1" in capsys.readouterr().err
    results = json.loads((out / "metrics.json").read_text())
    assert results["dataset"]["samples"] == 2 and results["dataset"]["failed"][0]["code"] == "MemoryError"


def test_refiner_output_probe_scales_the_correction_and_decodes_differences(tiny_base_dir, tiny_refiner_dir):
    """scripts/refiner_output_probe.py: scale 0 is the autoencoder round trip, scale 1 the refiner unchanged;
    difference decoding with scale 0 (no change) returns the conditioning itself."""
    import sys
    from pathlib import Path

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from autoencoder_round_trip import without_unet
    from refiner_output_probe import with_difference_decoding, with_scaled_correction

    from betterdepth_engine.models.loading import load_refiner

    image = torch.rand(1, 3, 64, 64) * 2 - 1
    conditioning = torch.linspace(-0.9, 0.9, 64).repeat(64, 1)[None, None]

    def refined(refiner):
        return refiner.refine(image, conditioning, 1, 1, 1.0, [torch.Generator().manual_seed(0)])

    plain = refined(load_refiner(str(tiny_refiner_dir)))
    assert torch.allclose(refined(with_scaled_correction(load_refiner(str(tiny_refiner_dir)), 1.0)), plain, atol=1e-4)
    round_trip = refined(without_unet(load_refiner(str(tiny_refiner_dir))))
    assert torch.allclose(refined(with_scaled_correction(load_refiner(str(tiny_refiner_dir)), 0.0)), round_trip,
                          atol=1e-6)
    assert not torch.allclose(round_trip, conditioning, atol=1e-3)  # the round trip alone changes the depth
    unchanged = with_difference_decoding(with_scaled_correction(load_refiner(str(tiny_refiner_dir)), 0.0))
    assert torch.allclose(refined(unchanged), conditioning, atol=1e-4)  # float error of two encodes


def test_normal_error_by_distance_tabulates_every_band():
    """scripts/normal_error_by_distance.py (docs/results.md section 9) on one scene: a row per distance band, the
    shares of pixels summing to 1."""
    import subprocess
    import sys
    from pathlib import Path

    repository = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "scripts/normal_error_by_distance.py", "--scenes", "1"],
                            cwd=repository, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| ") and "-" in line[2:6]]
    assert [row[0].strip() for row in rows] == ["2-3", "3-5", "5-8", "8-16", "16-inf"]
    assert sum(float(row[1]) for row in rows) == pytest.approx(1.0, abs=0.02)
