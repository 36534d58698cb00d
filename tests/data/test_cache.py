"""The scene cache: rendered once, identical to the generator, resumable, and read back in a seeded order."""

import json

import pytest
import torch

from betterdepth_engine.data.cache import cached_batches, load_scene_cache, write_scene_cache
from betterdepth_engine.data.synthetic import generate_scene
from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.train.loop import random_crops

SIZE = 32


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return write_scene_cache(tmp_path_factory.mktemp("cache"), "train", 10, SIZE, SIZE, workers=0, shard_size=4)


def test_cache_holds_the_generator_scenes(cache):
    scenes = load_scene_cache(cache, SIZE, SIZE)
    assert scenes["image"].shape == (10, 3, SIZE, SIZE) and scenes["image"].dtype == torch.uint8
    assert len(list(cache.glob("shard_*.pt"))) == 3
    for index in range(10):  # one from each shard
        sample = generate_scene(index, SIZE, SIZE)
        # Rays of a batch are cast together, which can change the last bit of a relief's depth.
        torch.testing.assert_close(scenes["depth"][index], sample.depth, rtol=1e-5, atol=1e-5)
        assert (scenes["image"][index].float() / 255 - sample.image).abs().max() <= 0.5 / 255 + 1e-6


def test_an_interrupted_cache_is_finished_by_the_same_command(cache, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in cache.iterdir():
        if path.name != "shard_0001.pt":
            (copy / path.name).write_bytes(path.read_bytes())
    with pytest.raises(BetterDepthError, match="incomplete"):
        load_scene_cache(copy, SIZE, SIZE)
    write_scene_cache(copy, "train", 10, SIZE, SIZE, workers=0, shard_size=4)
    assert torch.equal(load_scene_cache(copy, SIZE, SIZE)["depth"], load_scene_cache(cache, SIZE, SIZE)["depth"])


def test_cache_refuses_other_settings_and_other_sizes(cache):
    with pytest.raises(BetterDepthError, match="different scene cache"):
        write_scene_cache(cache, "train", 12, SIZE, SIZE, workers=0, shard_size=4)
    with pytest.raises(BetterDepthError, match="not 64x64"):
        load_scene_cache(cache, 64, 64)
    assert json.loads((cache / "cache.json").read_text())["count"] == 10


def test_cached_batches_cover_each_epoch_and_resume_at_any_batch(cache):
    scenes = load_scene_cache(cache, SIZE, SIZE)
    straight = cached_batches(cache, SIZE, SIZE, batch_size=5, seed=3)
    first_epoch = [next(straight) for _ in range(2)]
    # Every scene once per epoch (flipped or not): match each batch entry to a scene by its depth.
    seen = []
    for batch in first_epoch:
        assert torch.equal(batch["valid_mask"], batch["depth"] > 0)
        for depth in batch["depth"]:
            seen += [i for i in range(10) if torch.equal(depth, scenes["depth"][i])
                     or torch.equal(depth, scenes["depth"][i].flip(-1))]
    assert sorted(seen) == list(range(10))
    third = next(straight)
    resumed = next(cached_batches(cache, SIZE, SIZE, batch_size=5, seed=3, first_batch=2))
    assert torch.equal(third["image"], resumed["image"])
    other_seed = next(cached_batches(cache, SIZE, SIZE, batch_size=5, seed=4))
    assert not torch.equal(other_seed["depth"], first_epoch[0]["depth"])


def test_random_crops_cut_the_same_window_from_image_depth_mask_and_base(cache):
    batch = next(cached_batches(cache, SIZE, SIZE, batch_size=4, seed=0))
    batch["base_disparity"] = (1.0 / batch["depth"].clamp_min(0.1))[:, None]  # a base run on the whole scene
    cropped = random_crops(batch, 16, torch.Generator().manual_seed(0))
    assert cropped["image"].shape == (4, 3, 16, 16) and cropped["depth"].shape == (4, 16, 16)
    for index in range(4):
        # Find the window in the full depth map and check that the image was cut at the same place.
        windows = batch["depth"][index].unfold(0, 16, 1).unfold(1, 16, 1)
        matches = (windows == cropped["depth"][index]).flatten(2).all(-1).nonzero()
        assert any(torch.equal(batch["image"][index, :, top:top + 16, left:left + 16], cropped["image"][index])
                   for top, left in matches.tolist())
    assert torch.equal(cropped["valid_mask"], cropped["depth"] > 0)
    assert torch.equal(cropped["base_disparity"][:, 0], 1.0 / cropped["depth"].clamp_min(0.1))
    assert random_crops(batch, 0, torch.Generator()) is batch
    with pytest.raises(BetterDepthError, match="Crop size 20"):
        random_crops(batch, 20, torch.Generator())
