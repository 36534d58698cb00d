"""The launch contract: one ready line, shutdown, parent watch, token file, refusals; all on real processes."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time

import pytest

from betterdepth_engine.client import EngineClient, EngineError, launch_managed_engine
from tests.server.conftest import ENGINE_ENV, start_engine


def test_ready_line_is_the_only_stdout_and_shutdown_ends_the_process(tmp_path):
    token_file = tmp_path / "token"
    process = subprocess.Popen(
        [sys.executable, "-m", "betterdepth_engine", "serve", "--host", "127.0.0.1", "--port", "0",
         "--token-file", str(token_file), "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENGINE_ENV,
    )
    try:
        ready = json.loads(process.stdout.readline())
        assert set(ready) == {"event", "port", "protocol", "pid", "device"}
        assert ready["event"] == "ready" and ready["protocol"] == "1" and ready["pid"] == process.pid
        assert ready["device"] == "cpu" and ready["port"] > 0
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        client = EngineClient(f"http://127.0.0.1:{ready['port']}", token_file.read_text().strip())
        assert client.health()["protocol"] == "1"
        assert client.shutdown() == {"ok": True}
        stdout, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0
    assert stdout == b""  # nothing after the ready line
    assert b"engine stopped" in stderr  # logs go to stderr ...
    assert "engine stopped" in (tmp_path / "state" / "engine.log").read_text()  # ... and to the log file


def test_an_existing_token_file_is_reused(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("a-token-chosen-by-the-user-0123456789\n")
    engine = launch_managed_engine(sys.executable, tmp_path / "state", token_file=token_file, env=ENGINE_ENV)
    try:
        assert engine.token == "a-token-chosen-by-the-user-0123456789"
        assert EngineClient(engine.url, engine.token).health()["protocol"] == "1"
    finally:
        engine.stop()


def test_engine_exits_within_two_seconds_after_its_parent_dies(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    engine = start_engine(tmp_path / "state", parent_pid=parent.pid)
    assert engine.client().health()["protocol"] == "1"
    parent.kill()
    parent.wait()
    died = time.monotonic()
    engine.process.wait(timeout=10)
    assert time.monotonic() - died < 2.0
    engine.stop()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--host", "0.0.0.0", "--no-token"], "without a token"),
        (["--max-queue", "0"], "--max-queue must be at least 1"),
        (["--allow-dir", "/no/such/folder"], "is not a folder"),
    ],
)
def test_unsafe_or_bad_settings_are_refused_before_listening(tmp_path, args, expected):
    result = subprocess.run(
        [sys.executable, "-m", "betterdepth_engine", "serve", "--port", "0", "--state-dir", str(tmp_path), *args],
        capture_output=True, text=True, env=ENGINE_ENV, timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""  # no ready line
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_a_python_without_the_engine_gives_a_clear_error(tmp_path):
    with pytest.raises(EngineError) as caught:
        launch_managed_engine("/no/such/python", tmp_path)
    assert caught.value.code == "ENGINE_NOT_STARTED" and "/no/such/python" in caught.value.message
    with pytest.raises(EngineError) as caught:  # the engine starts but refuses its arguments: its stderr is shown
        launch_managed_engine(sys.executable, tmp_path, env=ENGINE_ENV, extra_args=["--no-such-option"])
    assert caught.value.code == "ENGINE_NOT_STARTED" and "no-such-option" in caught.value.message


def test_a_client_of_a_stopped_engine_gets_engine_unreachable(tmp_path):
    engine = start_engine(tmp_path / "state")
    client = engine.client()
    engine.stop()
    with pytest.raises(EngineError) as caught:
        client.health()
    assert caught.value.code == "ENGINE_UNREACHABLE" and engine.url in caught.value.message
