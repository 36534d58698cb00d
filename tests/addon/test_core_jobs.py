"""The add-on's job machinery against a real engine (shipped default models), without Blender."""

from __future__ import annotations

import json
import socket
import sys
import threading

import numpy as np
import pytest

from betterdepth_engine.client import EngineClient
from blender_addon.core.engine_setup import ENV_VARIABLE, check_setup, find_engine_python
from blender_addon.core.jobs import EngineJob, JobError, JobRequest, JobState, can_move


def _drain(job: EngineJob) -> list:
    events = []
    while not job.events.empty():
        events.append(job.events.get())
    return events


def test_state_machine_moves_forward_and_ends_once():
    assert can_move(JobState.PREPARING, JobState.SUBMITTING)
    assert can_move(JobState.SUBMITTING, JobState.RUNNING)  # a job may start at once, skipping the queue
    assert not can_move(JobState.RUNNING, JobState.QUEUED)
    assert can_move(JobState.RUNNING, JobState.CANCELLED) and can_move(JobState.PREPARING, JobState.FAILED)
    for final in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
        assert final.final and not can_move(final, JobState.FAILED) and not can_move(final, JobState.RUNNING)


def test_mesh_job_downloads_its_results(engine, photo_path, tmp_path):
    client = engine.client()
    job = EngineJob(lambda: client, JobRequest("mesh", photo_path, mesh={"colors": "normal"}), tmp_path / "job")
    files = job.run()
    assert sorted(files) == ["disparity.npy", "mesh.npz", "meta.json"]
    assert all(path.is_file() for path in files.values())
    meta = json.loads(files["meta.json"].read_text())
    assert meta["mesh"]["camera"]["width"] == 75 and np.load(files["disparity.npy"]).shape == (50, 75)
    events = _drain(job)
    states = [payload.state for kind, payload in events if kind == "progress"]
    assert states[0] is JobState.SUBMITTING and states[-1] is JobState.SUCCEEDED
    assert JobState.DOWNLOADING in states
    assert all(can_move(a, b) or a == b for a, b in zip(states, states[1:]))
    assert events[-1][0] == "succeeded"


def test_poll_follows_a_thread_to_its_end(engine, photo_path, tmp_path):
    """What the UI's modal timer does: non-blocking polls until the final event, progress in order."""
    client = engine.client()
    job = EngineJob(lambda: client, JobRequest("estimate", photo_path), tmp_path / "job")
    progress, previews = [], []
    assert job.poll(progress.append, previews.append, block=False) is None  # nothing yet
    job.start()
    outcome = None
    while outcome is None:
        outcome = job.poll(progress.append, previews.append, block=False)
    kind, files = outcome
    assert kind == "succeeded" and sorted(files) == ["base_disparity.npy", "disparity.npy", "meta.json"]
    fractions = [p.fraction for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # The engine's preview as it was while running (written after the base, listed during the refine stage).
    assert previews and all(path.read_bytes().startswith(b"\x89PNG") for path in previews)
    job.join(10)
    assert not job.running


def test_reuse_takes_the_earlier_depth_and_falls_back_when_it_is_gone(engine, photo_path, tmp_path):
    client = engine.client()
    first = EngineJob(lambda: client, JobRequest("estimate", photo_path), tmp_path / "first")
    first.run()
    mesh = EngineJob(lambda: client, JobRequest("mesh", photo_path, reuse_job=first.job_id), tmp_path / "mesh")
    files = mesh.run()
    assert mesh.reused and json.loads(files["meta.json"].read_text())["reused_from"] == first.job_id
    assert np.array_equal(np.load(files["disparity.npy"]), np.load(tmp_path / "first" / "disparity.npy"))
    client.delete(first.job_id)  # e.g. the engine's retention removed it
    again = EngineJob(lambda: client, JobRequest("mesh", photo_path, reuse_job=first.job_id), tmp_path / "again")
    files = again.run()
    assert not again.reused and json.loads(files["meta.json"].read_text())["reused_from"] is None


def test_depth_jobs_recognise_the_same_input_and_models_only():
    from blender_addon.core.jobs import DepthJobs

    jobs = DepthJobs()
    key = DepthJobs.key(("MANAGED", ""), ("/a.jpg", 1, 2), {"base": "default", "seed": 0})
    jobs.remember(key, "job-1")
    assert jobs.get(DepthJobs.key(("MANAGED", ""), ("/a.jpg", 1, 2), {"seed": 0, "base": "default"})) == "job-1"
    assert jobs.get(DepthJobs.key(("MANAGED", ""), ("/a.jpg", 1, 3), {"base": "default", "seed": 0})) is None
    assert jobs.get(DepthJobs.key(("MANAGED", ""), ("/a.jpg", 1, 2), {"base": "other", "seed": 0})) is None
    assert DepthJobs.key(("MANAGED", ""), None, {}) is None and jobs.get(None) is None


def test_thread_reports_a_bad_image_as_the_engine_error(engine, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 this is not a JPEG")
    job = EngineJob(engine.client, JobRequest("estimate", broken), tmp_path / "job")
    job.start()
    job.join(60)
    kind, error = _drain(job)[-1]
    assert kind == "failed" and error.code == "BAD_IMAGE" and job.progress.state is JobState.FAILED
    assert not (tmp_path / "job" / "disparity.npy").exists()


def test_cancel_stops_the_job_on_the_engine(engine, photo_path, tmp_path):
    """Cancel as soon as the engine runs the job: it ends CANCELLED there too, and nothing is downloaded."""
    client = engine.client()
    slow = {"ensemble_size": 8, "processing_resolution": 512}
    job = EngineJob(lambda: client, JobRequest("estimate", photo_path, estimate=slow), tmp_path / "job")
    started = threading.Event()
    original = job._on_status

    def on_status(status):
        original(status)
        if status["state"] == "running":
            started.set()

    job._on_status = on_status
    job.start()
    assert started.wait(60)
    job.cancel()
    job.join(60)
    kind, error = _drain(job)[-1]
    assert kind == "cancelled" and error.code == "CANCELLED"
    assert client.status(job.job_id)["state"] == "cancelled"
    assert not (tmp_path / "job" / "disparity.npy").exists()


def test_unreachable_engine_and_wrong_token_are_clear(engine, photo_path, tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    job = EngineJob(lambda: EngineClient(f"http://127.0.0.1:{port}", "x", timeout=5),
                    JobRequest("estimate", photo_path), tmp_path / "a")
    with pytest.raises(JobError) as down:
        job.run()
    assert down.value.code == "ENGINE_UNREACHABLE" and "Start the engine" in down.value.report()
    job = EngineJob(lambda: EngineClient(engine.url, "wrong-token"), JobRequest("estimate", photo_path), tmp_path / "b")
    with pytest.raises(JobError) as refused:
        job.run()
    assert refused.value.code == "UNAUTHORIZED"


def test_find_engine_python_order(tmp_path):
    python = tmp_path / "project" / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    assert find_engine_python("", str(tmp_path / "project"), {"PATH": ""}) == (python, "the project's .venv")
    assert find_engine_python("", "", {ENV_VARIABLE: str(python), "PATH": ""})[1] == f"${ENV_VARIABLE}"
    assert find_engine_python("", "", {"PATH": ""}) == (None, "not found")
    missing, origin = find_engine_python(str(tmp_path / "missing"), "", {ENV_VARIABLE: str(python), "PATH": ""})
    assert missing is None and "missing file" in origin  # a wrong preference is not silently replaced


def test_check_setup_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VARIABLE, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    missing = check_setup("MANAGED")
    assert not missing[0].ok and ENV_VARIABLE in missing[0].fix
    found = check_setup("MANAGED", configured_python=sys.executable)
    assert all(finding.ok for finding in found) and "Engine 0.1.0" in found[1].what
    typo = check_setup("MANAGED", configured_python=str(tmp_path / "pyhton"))
    assert not typo[0].ok and "missing file" in typo[0].what
    wrong = check_setup("MANAGED", configured_python="/usr/bin/python3")  # a Python without the engine
    assert not wrong[1].ok and "cannot import the engine" in wrong[1].what
    remote = check_setup("EXTERNAL", url="http://gpu-box:8765", token="", online_access=False)
    assert [finding.ok for finding in remote] == [True, False, False]
    assert "Allow Online Access" in remote[1].fix
