"""Execution: cancel, many clients at once, a full queue, a killed engine, unloading, retention."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from betterdepth_engine.client import EngineError
from tests.server.conftest import SLOW, start_engine


def test_cancel_stops_a_running_job_within_one_step_and_leaves_no_results(engine, client, images_dir):
    job = client.submit("mesh", image_path=images_dir / "crop10.png", estimate=SLOW)
    steps_after_cancel = []
    cancelled_at = None
    for status in client.events(job["job_id"]):
        if cancelled_at is None and status["stage"] == "refine" and (status["step"] or 0) >= 3:
            cancelled_at = status["step"]
            answer = client.cancel(job["job_id"])
            assert answer["job_id"] == job["job_id"]
        elif cancelled_at is not None and status["step"] is not None:
            steps_after_cancel.append(status["step"])
    final = client.status(job["job_id"])
    assert final["state"] == "cancelled" and final["error"]["code"] == "CANCELLED"
    # The step running when the cancel arrived may finish; no further step starts.
    assert not steps_after_cancel or max(steps_after_cancel) <= cancelled_at + 1
    assert final["results"] == [] and not (engine.state_dir / "jobs" / job["job_id"] / "results").exists()
    with pytest.raises(EngineError) as caught:
        client.wait(job["job_id"])
    assert caught.value.code == "CANCELLED"


def test_a_queued_job_can_be_cancelled_before_it_starts(client, images_dir):
    running = client.submit("estimate", image_path=images_dir / "crop11.png", estimate=SLOW)
    queued = client.submit("estimate", image_path=images_dir / "crop12.png")
    assert client.status(queued["job_id"])["queue_position"] in (0, 1)
    assert client.cancel(queued["job_id"])["state"] == "cancelled"
    client.cancel(running["job_id"])
    assert client.status(queued["job_id"])["started_at"] is None


def test_twenty_concurrent_clients_get_their_own_results_byte_identical_to_the_pipeline(engine, images_dir):
    from betterdepth_engine.images import load_image
    from betterdepth_engine.models.loading import load_base_model, load_refiner
    from betterdepth_engine.pipeline import BetterDepthPipeline, RefineOptions

    outcomes: dict[int, bytes | Exception] = {}

    def one_client(index: int) -> None:
        client = engine.client(timeout=120)
        try:
            path = images_dir / f"crop{index:02d}.png"
            if index % 2:  # half of them upload, half send a path
                job = client.submit("estimate", image_bytes=path.read_bytes(), filename=path.name,
                                    estimate={"seed": index})
            else:
                job = client.submit("estimate", image_path=path, estimate={"seed": index})
            client.wait(job["job_id"])
            outcomes[index] = client.result_bytes(job["job_id"], "disparity.npy")
        except Exception as error:  # noqa: BLE001 - reported below
            outcomes[index] = error

    threads = [threading.Thread(target=one_client, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert all(isinstance(outcome, bytes) for outcome in outcomes.values()), outcomes
    assert len(outcomes) == 20

    pipeline = BetterDepthPipeline(load_base_model("default"), load_refiner("default"))
    for index, served in outcomes.items():
        result = pipeline(load_image(images_dir / f"crop{index:02d}.png"), RefineOptions(seed=index))
        expected = io.BytesIO()
        np.save(expected, result.disparity)
        assert served == expected.getvalue(), f"client {index} got another image's or another seed's result"


def test_a_full_queue_answers_queue_full_and_the_engine_keeps_serving(tmp_path, images_dir):
    engine = start_engine(tmp_path / "state", images_dir, "--max-queue", "1")
    try:
        client = engine.client()
        running = client.submit("estimate", image_path=images_dir / "crop13.png", estimate=SLOW)
        while client.status(running["job_id"])["state"] != "running":
            time.sleep(0.05)
        queued = client.submit("estimate", image_path=images_dir / "crop14.png")
        with pytest.raises(EngineError) as caught:
            client.submit("estimate", image_path=images_dir / "crop15.png")
        assert caught.value.code == "QUEUE_FULL" and caught.value.hint
        assert client.health()["queue_length"] == 1
        client.cancel(running["job_id"])
        assert client.wait(queued["job_id"])["state"] == "succeeded"
    finally:
        engine.stop()


def test_a_killed_engine_keeps_finished_results_and_reports_the_interrupted_jobs(tmp_path, images_dir):
    state = tmp_path / "state"
    engine = start_engine(state, images_dir)
    client = engine.client()
    finished = client.submit("mesh", image_path=images_dir / "crop16.png")
    client.wait(finished["job_id"])
    finished_mesh = client.result_bytes(finished["job_id"], "mesh.npz")
    running = client.submit("estimate", image_path=images_dir / "crop17.png", estimate=SLOW)
    queued = client.submit("estimate", image_path=images_dir / "crop18.png")
    for status in client.events(running["job_id"]):
        if status["stage"] == "refine":
            break
    os.kill(engine.process.pid, signal.SIGKILL)
    engine.process.wait()

    restarted = start_engine(state, images_dir)
    try:
        client = restarted.client()
        assert client.status(finished["job_id"])["state"] == "succeeded"
        assert client.result_bytes(finished["job_id"], "mesh.npz") == finished_mesh
        for job in (running, queued):
            status = client.status(job["job_id"])
            assert status["state"] == "failed" and status["error"]["code"] == "ENGINE_RESTARTED"
            assert status["results"] == []  # no half-written result survives
            with pytest.raises(EngineError) as caught:
                client.wait(job["job_id"])
            assert caught.value.code == "ENGINE_RESTARTED"
        assert "ENGINE_RESTARTED" in (state / "engine.log").read_text()
        assert client.wait(client.submit("estimate", image_path=images_dir / "crop19.png")["job_id"])
    finally:
        restarted.stop()


def test_unload_drops_the_models_and_gives_memory_back(client, images_dir):
    client.wait(client.submit("estimate", image_path=images_dir / "crop00.png")["job_id"])
    loaded = client.health()["loaded_models"]
    assert {"kind": "base", "name": "default"} in loaded and {"kind": "refiner", "name": "default"} in loaded
    answer = client.unload()
    assert answer["unloaded"] == loaded
    assert answer["memory_after"]["rss_bytes"] < answer["memory_before"]["rss_bytes"] - 10 * 2**20
    health = client.health()
    assert health["loaded_models"] == []
    assert health["last_unload"]["memory_after"]["rss_bytes"] == answer["memory_after"]["rss_bytes"]
    client.wait(client.submit("estimate", image_path=images_dir / "crop00.png")["job_id"])  # loads again on demand


def test_idle_models_are_unloaded_and_expired_results_deleted(tmp_path, images_dir):
    engine = start_engine(tmp_path / "state", images_dir, "--idle-unload-s", "1", "--retention-s", "2")
    try:
        client = engine.client()
        job = client.submit("estimate", image_path=images_dir / "crop01.png")
        client.wait(job["job_id"])
        deadline = time.monotonic() + 20
        while client.health()["loaded_models"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.health()["loaded_models"] == []
        while time.monotonic() < deadline:
            try:
                client.status(job["job_id"])
            except EngineError as error:
                assert error.code == "NOT_FOUND"
                break
            time.sleep(0.2)
        else:
            pytest.fail("the job outlived its retention time")
        assert not (engine.state_dir / "jobs" / job["job_id"]).exists()
    finally:
        engine.stop()


def test_delete_removes_a_job_and_its_files(engine, client, images_dir):
    job = client.submit("estimate", image_path=images_dir / "crop02.png")
    client.wait(job["job_id"])
    assert client.delete(job["job_id"])["state"] == "succeeded"
    assert not (engine.state_dir / "jobs" / job["job_id"]).exists()
    with pytest.raises(EngineError) as caught:
        client.status(job["job_id"])
    assert caught.value.code == "NOT_FOUND"
    assert json.dumps(client.jobs()).count(job["job_id"]) == 0
