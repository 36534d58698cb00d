"""Tiny transformers depth models, built once per test session (offline, random weights)."""

from __future__ import annotations

import pytest

from tests.tiny_models import build_tiny_depth_anything, build_tiny_dpt


@pytest.fixture(scope="session")
def tiny_depth_anything_dir(tmp_path_factory):
    return build_tiny_depth_anything(tmp_path_factory.mktemp("tiny_depth_anything"))


@pytest.fixture(scope="session")
def tiny_metric_depth_anything_dir(tmp_path_factory):
    return build_tiny_depth_anything(tmp_path_factory.mktemp("tiny_metric_depth_anything"), metric=True)


@pytest.fixture(scope="session")
def tiny_dpt_dir(tmp_path_factory):
    return build_tiny_dpt(tmp_path_factory.mktemp("tiny_dpt"))


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty hub cache, so that a developer's real cache cannot change the outcome."""
    import huggingface_hub.constants

    cache = tmp_path / "hub_cache"
    cache.mkdir()
    # huggingface_hub reads its environment at import, so patch the constant it reads at call time.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache
