"""The shipped default models: small enough to ship, loaded by `default`, and better than the base alone."""

from pathlib import Path

import numpy as np
import pytest

from betterdepth_engine.cli import main
from betterdepth_engine.models.loading import DEFAULT_WEIGHTS

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_shipped_weights_fit_the_size_budget_and_are_fp16():
    from safetensors import safe_open

    files = [path for path in DEFAULT_WEIGHTS.rglob("*") if path.is_file()]
    assert sum(path.stat().st_size for path in files) <= 40 * 2**20
    weights = [path for path in files if path.name == "diffusion_pytorch_model.safetensors"]
    assert {path.parent.name for path in weights} == {"base", "vae", "unet"}
    for path in weights:
        with safe_open(path, "pt") as tensors:
            assert all(tensors.get_slice(name).get_dtype() == "F16" for name in tensors.keys())
    assert (DEFAULT_WEIGHTS / "README.md").exists()  # the model card


def test_estimate_uses_the_shipped_models_by_default(tmp_path):
    assert main(["estimate", str(SAMPLES / "coffee.jpg"), "-o", str(tmp_path), "-q"]) == 0
    refined = np.load(tmp_path / "coffee_disparity.npy")
    base = np.load(tmp_path / "coffee_base_disparity.npy")
    assert refined.shape == base.shape and np.isfinite(refined).all()
    assert np.abs(refined - base).mean() > 1e-3 * np.abs(base).mean()  # the refiner changed something
    assert np.corrcoef(refined.ravel(), base.ravel())[0, 1] > 0.8  # ... without losing the layout


def _evaluate_shipped_refiner(output, *options) -> tuple[dict, dict]:
    import json

    assert main(["eval", "--synthetic", "12", "-q", "-o", str(output), *options]) == 0  # a later --synthetic wins
    metrics = json.loads((output / "metrics.json").read_text())["metrics"]
    return metrics["base"], metrics["refined"]


@pytest.mark.slow
def test_refiner_sharpens_a_blurry_base_without_losing_its_layout(tmp_path):
    """Held-out scenes, a blurry simulated base, the refiner at 256 px (docs/results.md, sections 2 and 9): its
    raw output from a random draw (--noise random --no-guard) has sharper boundaries and better-placed edges; at
    its defaults (zero noise, the guard) it keeps to the base, boundaries not softer; AbsRel and δ1 not worse
    either way."""
    options = ("--base", "simulated:blurry", "--processing-resolution", "256")
    base, sampled = _evaluate_shipped_refiner(tmp_path / "random", *options, "--noise", "random", "--no-guard")
    assert sampled["boundary_f1"] > 1.15 * base["boundary_f1"]
    assert sampled["dbe_accuracy"] < base["dbe_accuracy"]
    base, refined = _evaluate_shipped_refiner(tmp_path / "zero", *options)
    assert refined["boundary_f1"] >= base["boundary_f1"]
    for scores in (sampled, refined):
        assert scores["delta1"] >= base["delta1"] - 0.005 and scores["abs_rel"] <= base["abs_rel"] + 0.005


@pytest.mark.slow
def test_refiner_keeps_the_shipped_base_layout_at_its_defaults(tmp_path):
    """The shipped models as a user gets them (docs/results.md, section 1): AbsRel and δ1 held, boundaries
    not softened. (On 12 scenes the boundary gain is small; section 1 measures it on 100.)"""
    base, refined = _evaluate_shipped_refiner(tmp_path)
    assert refined["boundary_f1"] >= base["boundary_f1"]
    assert refined["delta1"] >= base["delta1"] - 0.003 and refined["abs_rel"] <= base["abs_rel"] + 0.003


# How much rougher than its base the refined depth may be on flat, textured walls, in degrees of flatness
# (mean over the scenes). At its defaults the shipped refiner is smoother than its base there (docs/results.md,
# "A refiner that does no harm"); with random starting noise it was 1.5 degrees rougher on the same scenes.
FLATNESS_TOLERANCE_DEG = 0.25


@pytest.mark.slow
def test_refiner_copies_no_texture_into_flat_walls(tmp_path):
    """Texture-copy scenes (flat rooms covered in pictures, text and tiles): the shipped refiner at its defaults
    does not make the walls rougher than the shipped base does, and its normals are not worse."""
    base, refined = _evaluate_shipped_refiner(tmp_path, "--scene-kind", "texture_copy", "--synthetic", "6")
    assert refined["flatness_deg"] <= base["flatness_deg"] + FLATNESS_TOLERANCE_DEG
    assert refined["normal_error_deg"] <= base["normal_error_deg"] + FLATNESS_TOLERANCE_DEG


@pytest.mark.slow
def test_refiner_does_not_crumple_a_blurry_base(tmp_path):
    """The shipped refiner's guard (docs/results.md section 9): on a blurry base, at its defaults, boundaries
    sharper and neither normals nor flat surfaces worse; its raw output (--no-guard) crumples the flat ones."""
    options = ("--base", "simulated:blurry")
    base, refined = _evaluate_shipped_refiner(tmp_path / "guard", *options)
    assert refined["boundary_f1"] > base["boundary_f1"]
    assert refined["normal_error_deg"] <= base["normal_error_deg"] + 0.02
    assert refined["flatness_deg"] <= base["flatness_deg"] + 0.02
    _, raw = _evaluate_shipped_refiner(tmp_path / "raw", *options, "--no-guard")
    assert raw["flatness_deg"] > base["flatness_deg"] + 0.5
