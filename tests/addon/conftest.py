"""A real engine (the shipped default models) for the add-on core's tests, started once per session."""

from __future__ import annotations

import sys

import pytest

from betterdepth_engine.client import launch_managed_engine


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    managed = launch_managed_engine(sys.executable, tmp_path_factory.mktemp("engine_state"))
    yield managed
    managed.stop()
