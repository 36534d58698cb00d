"""Training on real datasets in Marigold's layouts (Hypersim, Virtual KITTI): fixture datasets written here,
batches drawn from them, and the paper's recipe end to end with tiny real models."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from betterdepth_engine.cli import main
from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.train.real_data import RealDepthBatches, parse_datasets


def _png(array: np.ndarray, format="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=format)
    return buffer.getvalue()


def write_files(root, files: dict[str, bytes]):
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.fixture
def hypersim(tmp_path):
    """Three Hypersim frames as Marigold's preprocessing writes them: rgb_*.png and depth_plane_*.png (mm)."""
    files, rng = {}, np.random.default_rng(0)
    for frame in range(3):
        depth_mm = np.full((48, 64), 2000 + 1000 * frame, np.uint16)
        depth_mm[10:30, 20:40] = 1200  # a box in front of the wall
        depth_mm[:4] = 0  # no depth (a window)
        files[f"ai_001_00{frame}/rgb_cam_00_fr0000.png"] = _png(rng.integers(0, 256, (48, 64, 3), np.uint8))
        files[f"ai_001_00{frame}/depth_plane_cam_00_fr0000.png"] = _png(depth_mm)
    return write_files(tmp_path / "hypersim", files)


@pytest.fixture
def vkitti(tmp_path):
    """One Virtual KITTI 2 frame: JPEG image and centimetre depth at KITTI's size, sky at 655.35 m."""
    depth_cm = np.tile(np.linspace(300, 6000, 1242).astype(np.uint16), (375, 1))
    depth_cm[:100] = 65535
    image = np.random.default_rng(1).integers(0, 256, (375, 1242, 3), np.uint8)
    return write_files(tmp_path / "vkitti", {
        "rgb/Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg": _png(image, "JPEG"),
        "depth/Scene01/clone/frames/depth/Camera_0/depth_00000.png": _png(depth_cm)})


def test_batches_mix_the_datasets_by_weight_and_are_pure_functions_of_their_number(hypersim, vkitti):
    batches = RealDepthBatches(f"hypersim:{hypersim},vkitti:{vkitti}", "0.9,0.1", 32, 48, 4, seed=0)
    batch = batches[5]
    assert batch["image"].shape == (4, 3, 32, 48) and batch["image"].dtype == torch.float32
    assert batch["depth"].shape == batch["valid_mask"].shape == (4, 32, 48)
    assert 0 <= batch["image"].min() and batch["image"].max() <= 1
    assert (batch["depth"][~batch["valid_mask"]] == 0).all() and (batch["depth"][batch["valid_mask"]] > 0).all()
    assert batch["seed"].tolist() == [20, 21, 22, 23]
    again = RealDepthBatches(f"hypersim:{hypersim},vkitti:{vkitti}", "0.9,0.1", 32, 48, 4, seed=0)[5]
    assert all(torch.equal(batch[key], again[key]) for key in ("image", "depth", "valid_mask"))
    # Virtual KITTI's sky is beyond its 80 m range (invalid); its depth reaches 60 m. Hypersim stays under 5 m.
    maxima = [float(batches[n]["depth"].amax()) for n in range(25)]
    from_vkitti = sum(m > 10 for m in maxima)
    assert 3 <= from_vkitti <= 20  # of 100 samples, about 10
    assert all(m < 61 for m in maxima)


def test_dataset_lists_and_weights_are_checked(hypersim):
    assert parse_datasets(f"hypersim:{hypersim}", "")[1] == [1.0]
    with pytest.raises(BetterDepthError, match="Cannot read the training dataset 'nyu:"):
        parse_datasets(f"nyu:{hypersim}", "")
    with pytest.raises(BetterDepthError, match="does not fit 1 dataset"):
        parse_datasets(f"hypersim:{hypersim}", "0.9,0.1")
    with pytest.raises(BetterDepthError, match="Dataset root .* does not exist"):
        RealDepthBatches(f"hypersim:{hypersim / 'missing'}", "", 32, 48, 1, seed=0)


@pytest.mark.slow
def test_the_paper_recipe_runs_end_to_end_on_real_layouts(tmp_path, hypersim, vkitti, tiny_stable_diffusion_dir,
                                                          photo_path):
    """`betterdepth train refiner` as scripts/train_paper_recipe.sh runs it, with tiny models: a Depth Anything
    base through transformers, the refiner inflated from Stable Diffusion 2, Hypersim + Virtual KITTI 9:1,
    patch 8, eta 0.1, gradient accumulation, learning rate 3e-5. A few real steps, stopped, resumed to exactly
    the same weights, exported; the engine loads the export and estimates depth with it."""
    import json

    from tests.tiny_models import build_tiny_depth_anything
    from tests.train.test_training_runs import _assert_refiner_resumes_exactly

    depth_anything = build_tiny_depth_anything(tmp_path / "depth-anything")
    command = ["train", "refiner", "--datasets", f"hypersim:{hypersim},vkitti:{vkitti}", "--dataset-weights",
               "0.9,0.1", "--base", str(depth_anything), "--init", str(tiny_stable_diffusion_dir),
               "--patch-size", "8", "--eta", "0.1", "--batch-size", "1", "--gradient-accumulation", "2",
               "--learning-rate", "3e-5", "--height", "32", "--width", "48", "--no-sky-as-far",
               "--checkpoint-every", "2", "--log-every", "1"]
    _assert_refiner_resumes_exactly(command, tmp_path, steps=3)
    run = tmp_path / "straight"
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3] and all(0 <= entry["kept_patches"] <= 1 for entry in log)
    assert json.loads((run / "config.json").read_text())["datasets"].startswith("hypersim:")
    out = tmp_path / "out"
    assert main(["estimate", str(photo_path), "-o", str(out), "--base", str(depth_anything),
                 "--refiner", str(run / "refiner"), "-q"]) == 0
    disparity = np.load(out / "photo_disparity.npy")
    assert disparity.shape == (50, 75) and np.isfinite(disparity).all()


@pytest.mark.slow
def test_refiner_training_runs_on_two_processes(tmp_path, hypersim, tiny_stable_diffusion_dir):
    """Multi-GPU training is accelerate's data-parallel path; two CPU processes (torchrun, gloo) run the same
    code: both train, the main one logs, checkpoints and exports a refiner the engine loads."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from betterdepth_engine.models.refiner import DepthRefiner
    from tests.tiny_models import build_tiny_depth_anything

    run = tmp_path / "run"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--nproc_per_node", "2", "-m", "betterdepth_engine", "train", "refiner",
               "--output-dir", str(run), "--datasets", f"hypersim:{hypersim}",
               "--base", str(build_tiny_depth_anything(tmp_path / "depth-anything")),
               "--init", str(tiny_stable_diffusion_dir), "--batch-size", "1", "--gradient-accumulation", "2",
               "--height", "32", "--width", "48", "--steps", "3", "--checkpoint-every", "2", "--log-every", "1",
               "--no-sky-as-far"]
    root = str(Path(__file__).resolve().parents[2])
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.count("exported refiner") == 2  # both processes finish; only the main one writes
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [1, 2, 3]
    DepthRefiner.from_pretrained(run / "refiner")


def test_the_training_benchmark_runs_the_recipe_on_tiny_random_models():
    """scripts/bench_training.py (the full-size GPU timing of docs/benchmarks.md), its tiny size on the CPU: it
    builds the checkpoints and dataset offline, trains through the real command and prints its table."""
    import subprocess
    import sys
    from pathlib import Path

    repository = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "scripts/bench_training.py", "--size", "tiny", "--device", "cpu",
                             "--steps", "2", "--warmup", "1", "--height", "64", "--width", "96", "--frames", "2",
                             "--data-workers", "0", "--mixed-precision", "no"],
                            cwd=repository, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = dict(line.strip("|").split("|")[:2] for line in result.stdout.splitlines() if line.startswith("| ") and "|" in line[2:])
    assert float(rows[" seconds per optimizer step (batch 2) "]) > 0
    assert float(rows[" images per second "]) > 0
