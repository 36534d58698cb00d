import dataclasses

import numpy as np
import pytest

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.images import LoadedImage
from betterdepth_engine.models.default_base import DefaultBaseModel
from betterdepth_engine.models.file_base import FileBaseModel
from betterdepth_engine.models.loading import load_base_model, load_refiner
from betterdepth_engine.models.refiner import DepthRefiner
from betterdepth_engine.pipeline import BetterDepthPipeline, RefineOptions
from tests.conftest import random_rgb


@pytest.fixture
def pipeline(tiny_base_dir, tiny_refiner_dir):
    return BetterDepthPipeline(load_base_model(str(tiny_base_dir)), load_refiner(str(tiny_refiner_dir)))


@pytest.mark.parametrize("size", [(37, 53), (64, 48), (9, 130)])
def test_result_is_at_input_resolution_in_the_base_frame(pipeline, size):
    image = LoadedImage(rgb=random_rgb(*size))
    result = pipeline(image, RefineOptions(processing_resolution=64))
    assert result.disparity.shape == result.base_disparity.shape == size
    assert result.disparity.dtype == np.float32 and np.isfinite(result.disparity).all()
    assert result.uncertainty is None
    assert set(result.timings) == {"base", "prepare", "encode", "step_1", "step_2", "decode", "ensemble"}
    # The refined map is expressed in the base's scale: its range overlaps the base's, not [-1, 1] or [0, 1].
    low, high = np.percentile(result.base_disparity, [2, 98])
    assert low <= np.median(result.disparity) <= high


def test_seed_determinism_and_ensemble_uncertainty(pipeline):
    image = LoadedImage(rgb=random_rgb(40, 40))
    options = RefineOptions(ensemble_size=3, processing_resolution=64, seed=5)
    first, second = pipeline(image, options), pipeline(image, options)
    assert np.array_equal(first.disparity, second.disparity)
    assert first.uncertainty.shape == (40, 40) and (first.uncertainty >= 0).all() and first.uncertainty.max() > 0
    other = pipeline(image, RefineOptions(ensemble_size=3, processing_resolution=64, seed=6))
    assert not np.array_equal(first.disparity, other.disparity)
    assert first.metadata["ensemble_size"] == 3 and first.metadata["seed"] == 5


def test_zero_noise_is_one_deterministic_estimate_whatever_the_seed(pipeline):
    """noise="zero" starts denoising from the noise's mean: every seed and member give the same result, unlike
    random noise; the metadata says which was used (the refiner's default when not asked)."""
    image = LoadedImage(rgb=random_rgb(40, 40))
    zero = [pipeline(image, RefineOptions(ensemble_size=2, processing_resolution=64, seed=seed, noise="zero"))
            for seed in (1, 2)]
    assert np.array_equal(zero[0].disparity, zero[1].disparity) and zero[0].uncertainty.max() == 0
    assert zero[0].metadata["noise"] == "zero"
    randomly = pipeline(image, RefineOptions(processing_resolution=64, seed=1))
    assert randomly.metadata["noise"] == pipeline.refiner.config.default_noise == "random"  # the tiny refiner's
    assert not np.array_equal(randomly.disparity, zero[0].disparity)
    with pytest.raises(BetterDepthError, match="the noise must be one of random, zero, not 'none'"):
        RefineOptions(noise="none")


def test_an_ensemble_without_a_noise_kind_draws_random_noise(pipeline, monkeypatch):
    """A refiner whose default is zero noise (the shipped one) would give identical members: an ensemble asked
    for without a noise kind uses random noise; one member keeps the default."""
    monkeypatch.setattr(pipeline.refiner, "config", dataclasses.replace(pipeline.refiner.config, default_noise="zero"))
    image = LoadedImage(rgb=random_rgb(40, 40))
    ensemble = pipeline(image, RefineOptions(ensemble_size=3, processing_resolution=64))
    assert ensemble.metadata["noise"] == "random" and ensemble.uncertainty.max() > 0
    assert pipeline(image, RefineOptions(processing_resolution=64)).metadata["noise"] == "zero"


def test_without_refiner_the_result_is_the_base(tiny_base_dir):
    pipeline = BetterDepthPipeline(load_base_model(str(tiny_base_dir)), load_refiner("none"))
    result = pipeline(LoadedImage(rgb=random_rgb(30, 20)))
    assert np.array_equal(result.disparity, result.base_disparity) and result.metadata["refiner"] is None


def test_invalid_base_pixels_stay_invalid_and_outliers_keep_their_range(tmp_path, tiny_refiner_dir):
    disparity = np.tile(np.linspace(0.0, 1.0, 32, dtype=np.float32), (24, 1))
    disparity[:4, :4] = np.nan  # no base value here
    disparity[10, 10] = 50.0  # far beyond the 98% percentile: clipped in the conditioning, restored after
    np.save(tmp_path / "scene.npy", disparity)
    pipeline = BetterDepthPipeline(FileBaseModel(tmp_path), DepthRefiner.from_pretrained(tiny_refiner_dir))
    image = LoadedImage(rgb=random_rgb(24, 32), path=tmp_path / "scene.jpg")
    result = pipeline(image, RefineOptions(processing_resolution=64))
    assert np.isnan(result.disparity[:4, :4]).all() and np.isnan(result.base_disparity[:4, :4]).all()
    assert np.isfinite(result.disparity[4:, 4:]).all()
    assert result.disparity[10, 10] > 40.0


def test_training_free_refinement_is_least_squares_aligned_to_the_base(tmp_path, tiny_marigold_dir):
    # Two levels exactly at the 2% / 98% percentiles: the conditioning's normalisation clips nothing; and the
    # image is already at the processing resolution (64 px long side, a multiple of 8), so nothing is resampled.
    # The result must then be the least-squares affine fit of the U-Net's output to the base itself.
    base = np.full((48, 64), 2.0, np.float32)
    base[:, 32:] = 7.0  # an arbitrary affine frame
    np.save(tmp_path / "steps.npy", base)
    pipeline = BetterDepthPipeline(FileBaseModel(tmp_path), DepthRefiner.from_marigold(tiny_marigold_dir))
    result = pipeline(LoadedImage(rgb=random_rgb(48, 64), path=tmp_path / "steps.png"),
                      RefineOptions(denoising_steps=4, strength=0.25, processing_resolution=64))
    # Fitting the base once more changes nothing: scale 1, shift 0. (The mean alone would match for any scale.)
    scale, shift = np.polyfit(result.disparity.ravel().astype(np.float64), base.ravel().astype(np.float64), 1)
    assert scale == pytest.approx(1.0, abs=1e-3) and shift == pytest.approx(0.0, abs=1e-2)
    assert result.disparity.std() > 0  # the refiner's own structure, not a copy of the base's two levels
    assert result.metadata["strength"] == 0.25


def test_default_base_model_roundtrip(tiny_base_dir):
    model = DefaultBaseModel.from_pretrained(tiny_base_dir)
    prediction = model.predict(LoadedImage(rgb=random_rgb(21, 33)))
    assert prediction.disparity.shape == (21, 33) and prediction.valid_mask.all()
    assert np.array_equal(prediction.disparity, model.predict(LoadedImage(rgb=random_rgb(21, 33))).disparity)


def test_batched_refinement_equals_one_image_at_a_time(pipeline):
    images = [LoadedImage(rgb=random_rgb(30, 44, seed)) for seed in range(3)]
    options = RefineOptions(ensemble_size=2, processing_resolution=64, seed=1)
    predictions = [pipeline.predict_base(image)[0] for image in images]
    batched = pipeline.refine_batch(images, predictions, options)
    for image, result in zip(images, batched):
        single = pipeline(image, options)
        assert np.allclose(result.disparity, single.disparity, atol=1e-4)
        assert result.metadata["batch_size"] == 3
    with pytest.raises(ValueError, match="one size"):
        pipeline.refine_batch([images[0], LoadedImage(rgb=random_rgb(10, 10))], predictions[:2], options)


def test_the_guard_is_the_refiners_and_can_be_turned_off(pipeline, monkeypatch):
    """Only the correction is resampled and added to the base: with a guard that drops every correction the
    result is the base exactly (its full-resolution values, not a resampled copy); guard=False gives the raw
    output; the metadata says which."""
    image = LoadedImage(rgb=random_rgb(37, 53))
    options = RefineOptions(processing_resolution=64)
    raw = pipeline(image, options)
    assert raw.metadata["guard"] is None  # the tiny refiner has none: the paper's output
    monkeypatch.setattr(pipeline.refiner, "config",
                        dataclasses.replace(pipeline.refiner.config, guard_threshold=10.0, guard_radius=1))
    guarded = pipeline(image, options)
    assert np.array_equal(guarded.disparity, guarded.base_disparity)
    assert guarded.metadata["guard"] == {"threshold": 10.0, "radius": 1, "median_radius": 0}
    unguarded = pipeline(image, RefineOptions(processing_resolution=64, guard=False))
    assert np.array_equal(unguarded.disparity, raw.disparity) and unguarded.metadata["guard"] is None
