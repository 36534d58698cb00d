"""Client for the BetterDepth engine service (protocol v1), standard library only.

The Blender extension ships this very file (its build copies it in as `engine_client.py`), so it must not
import anything outside the standard library, and certainly not the engine.

    engine = launch_managed_engine("/path/to/engine/.venv/bin/python", state_dir="/tmp/bd")
    client = EngineClient(engine.url, engine.token)
    job = client.submit("mesh", image_path="/photos/room.jpg", mesh={"max_faces": 200000})
    status = client.wait(job["job_id"], on_progress=lambda s: print(s["stage"], s["fraction"]))
    client.download(job["job_id"], "mesh.npz", "/tmp/room_mesh.npz")
    engine.stop()

Every failure (engine down, timeout, an error answer, a failed or cancelled job) raises `EngineError` with a
stable `code`, a `message` saying what was wrong and a `hint` saying what to do.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

PROTOCOL = "1"
FINAL_STATES = ("succeeded", "failed", "cancelled")


class EngineError(Exception):
    """An error from (or about) the engine: code, message, hint, as the service answers them."""

    def __init__(self, code: str, message: str, hint: str = ""):
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "hint": self.hint}

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}" + (f" ({self.hint})" if self.hint else "")


class EngineClient:
    """Talks to one engine at `url` (e.g. http://127.0.0.1:8765) with its bearer token."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._limits: dict | None = None

    # Transport -------------------------------------------------------------------------------------------

    def _open(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
              headers: dict | None = None, timeout: float | None = None):
        request = urllib.request.Request(f"{self.url}/v1{path}", data=body, method=method)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as error:
            raise _error_from_answer(error.code, error.read()) from None
        except urllib.error.URLError as error:
            raise self._unreachable(error.reason) from None
        except (TimeoutError, ConnectionError, OSError) as error:
            raise self._unreachable(error) from None

    def _unreachable(self, reason) -> EngineError:
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return EngineError("ENGINE_TIMEOUT", f"The engine at {self.url} did not answer in time.",
                               "It may be busy loading models; try again, or check the engine log.")
        return EngineError("ENGINE_UNREACHABLE", f"Cannot reach the engine at {self.url} ({reason}).",
                           "Start the engine (`betterdepth serve`), or check its URL and that it is still running.")

    def _json(self, method: str, path: str, payload: dict | None = None, timeout: float | None = None) -> dict:
        body = json.dumps(payload).encode() if payload is not None else None
        with self._open(method, path, body, "application/json" if body is not None else None,
                        timeout=timeout) as response:
            return _read_json(response.read())

    # Protocol --------------------------------------------------------------------------------------------

    def health(self) -> dict:
        return self._json("GET", "/health")

    def upload(self, data: bytes, filename: str) -> dict:
        """Send a file's bytes; returns {"upload_id", "size", "sha256"}."""
        # Checked here too: a server refusing a large body mid-send can only drop the connection.
        if self._limits is None:
            self._limits = self.health()["limits"]
        limit = self._limits["max_upload_bytes"]
        if len(data) > limit:
            raise EngineError("PAYLOAD_TOO_LARGE", f"'{Path(filename).name}' is {len(data) / 2**20:.1f} MB; the "
                              f"engine accepts at most {limit / 2**20:.1f} MB.",
                              "Send a smaller file, or start the engine with a larger --max-upload-mb.")
        with self._open("POST", "/uploads", data, "application/octet-stream",
                        headers={"X-Filename": Path(filename).name}) as response:
            return _read_json(response.read())

    def submit(self, task: str, image_path: str | os.PathLike | None = None, image_bytes: bytes | None = None,
               filename: str = "image.png", reuse_job: str | None = None, estimate: dict | None = None,
               mesh: dict | None = None, relief: dict | None = None, idempotency_key: str | None = None,
               reuse_disparity: str | None = None) -> dict:
        """Queue a job ("estimate", "mesh" or "relief"); returns {"job_id", "state", "queue_position", ...}.

        The image is a path the engine may read (inside one of its --allow-dir folders), or bytes that are
        uploaded first; `reuse_job` instead reuses an earlier job's depth (no model runs), and `reuse_disparity`
        (an upload id of a disparity file the caller kept) is the depth of a mesh or relief job (no model runs;
        the image is then optional).
        """
        request: dict = {"task": task, "estimate": estimate or {}, "mesh": mesh or {}, "relief": relief or {}}
        if image_bytes is not None:
            request["image"] = {"upload_id": self.upload(image_bytes, filename)["upload_id"]}
        elif image_path is not None:
            request["image"] = {"path": str(Path(image_path).resolve())}
        if reuse_job is not None:
            request["reuse_job"] = reuse_job
        if reuse_disparity is not None:
            request["reuse_disparity"] = {"upload_id": reuse_disparity}
        if idempotency_key is not None:
            request["idempotency_key"] = idempotency_key
        return self._json("POST", "/jobs", request)

    def status(self, job_id: str) -> dict:
        return self._json("GET", f"/jobs/{job_id}")

    def jobs(self) -> list[dict]:
        return self._json("GET", "/jobs")["jobs"]

    def events(self, job_id: str, timeout: float = 60.0):
        """The job's status dicts as they change (Server-Sent Events), ending with its final state."""
        with self._open("GET", f"/jobs/{job_id}/events", timeout=timeout) as response:
            data: list[str] = []
            while True:
                try:
                    line = response.readline()
                except (TimeoutError, ConnectionError, OSError) as error:
                    raise self._unreachable(error) from None
                if not line:
                    return
                line = line.decode("utf-8").rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    yield json.loads("\n".join(data))
                    data = []

    def wait(self, job_id: str, on_progress=None) -> dict:
        """Follow the job to its end, calling on_progress(status) on each change; returns the succeeded status.

        A failed or cancelled job raises EngineError with the job's own error code (e.g. BAD_IMAGE, CANCELLED).
        If the event stream breaks, falls back to polling the status.
        """
        status = None
        try:
            for status in self.events(job_id):
                if on_progress is not None:
                    on_progress(status)
        except EngineError as error:
            if error.code != "ENGINE_TIMEOUT":
                raise
        while status is None or status["state"] not in FINAL_STATES:
            status = self.status(job_id)
            if status["state"] not in FINAL_STATES:
                time.sleep(0.2)
        if status["state"] != "succeeded":
            error = status.get("error") or {"code": "CANCELLED", "message": "The job was cancelled.", "hint": ""}
            raise EngineError(error["code"], error["message"], error.get("hint", ""))
        return status

    def cancel(self, job_id: str) -> dict:
        return self._json("POST", f"/jobs/{job_id}/cancel")

    def delete(self, job_id: str) -> dict:
        return self._json("DELETE", f"/jobs/{job_id}")

    def result_bytes(self, job_id: str, name: str) -> bytes:
        with self._open("GET", f"/jobs/{job_id}/results/{name}") as response:
            return response.read()

    def download(self, job_id: str, name: str, destination: str | os.PathLike) -> Path:
        """Save a result file; it appears whole or not at all (temporary file, then rename)."""
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f".{destination.name}.partial")
        try:
            with self._open("GET", f"/jobs/{job_id}/results/{name}") as response, open(partial, "wb") as file:
                while chunk := response.read(1 << 20):
                    file.write(chunk)
            os.replace(partial, destination)
        finally:
            if partial.exists():
                partial.unlink()
        return destination

    def unload(self) -> dict:
        """Drop the engine's models and give their memory (and the GPU's) back."""
        return self._json("POST", "/models/unload", timeout=max(self.timeout, 90.0))

    def shutdown(self) -> dict:
        return self._json("POST", "/shutdown")


def _read_json(body: bytes) -> dict:
    try:
        return json.loads(body)
    except ValueError:
        raise EngineError("BAD_ANSWER", "The engine's answer is not JSON.",
                          "Check that the URL points at a BetterDepth engine.") from None


def _error_from_answer(status: int, body: bytes) -> EngineError:
    try:
        answer = json.loads(body)
        return EngineError(answer["code"], answer["message"], answer.get("hint", ""))
    except (ValueError, KeyError, TypeError):
        return EngineError(f"HTTP_{status}", f"The engine answered HTTP {status}.",
                           "Check that the URL points at a BetterDepth engine.")


# Managed engines ---------------------------------------------------------------------------------------------

class ManagedEngine:
    """An engine process this program started; stop it with `stop()` (or use it as a context manager)."""

    def __init__(self, process: subprocess.Popen, ready: dict, token: str, state_dir: Path, host: str):
        self.process = process
        self.ready = ready
        self.token = token
        self.state_dir = state_dir
        self.port = ready["port"]
        self.device = ready.get("device", "")
        self.url = f"http://{host}:{self.port}"
        self.log_path = state_dir / "engine.log"

    def client(self, timeout: float = 30.0) -> EngineClient:
        return EngineClient(self.url, self.token, timeout)

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the engine to shut down; terminate it if it does not within `timeout`, then kill it."""
        if self.running():
            try:
                self.client(timeout=5).shutdown()
            except EngineError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> ManagedEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def engine_environment(base: dict | None = None) -> dict:
    """The environment for the engine's Python: without the host's Python settings (Blender sets PYTHONHOME)."""
    environment = dict(os.environ if base is None else base)
    for name in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONNOUSERSITE", "PYTHONEXECUTABLE"):
        environment.pop(name, None)
    return environment


def launch_managed_engine(python: str | os.PathLike, state_dir: str | os.PathLike, *,
                          token_file: str | os.PathLike | None = None, allow_dirs=(), parent_pid: int | None = None,
                          extra_args=(), startup_timeout: float = 180.0, env: dict | None = None,
                          host: str = "127.0.0.1") -> ManagedEngine:
    """Start `<python> -m betterdepth_engine serve` on a free loopback port and wait for its ready line.

    The engine exits by itself when `parent_pid` (default: this process) dies. Its stderr goes to
    `<state_dir>/engine.stderr.log`; a failed start raises EngineError with the end of that log.
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    token_file = Path(token_file) if token_file else state_dir / "token"
    command = [str(python), "-m", "betterdepth_engine", "serve", "--host", host, "--port", "0",
               "--state-dir", str(state_dir), "--token-file", str(token_file),
               "--parent-pid", str(parent_pid or os.getpid())]
    for folder in allow_dirs:
        command += ["--allow-dir", str(folder)]
    command += [str(arg) for arg in extra_args]
    stderr_path = state_dir / "engine.stderr.log"
    try:
        with open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL,
                                       env=engine_environment(env))
    except OSError as error:
        raise EngineError("ENGINE_NOT_STARTED", f"Cannot run the engine's Python '{python}': {error.strerror}.",
                          "Point the add-on at the Python of the environment where betterdepth is installed "
                          "(e.g. <project>/.venv/bin/python).") from None
    ready = _read_ready_line(process, startup_timeout)
    if ready is None:
        process.kill()
        process.wait()
        tail = stderr_path.read_text(errors="replace").strip().splitlines()[-8:]
        raise EngineError("ENGINE_NOT_STARTED", "The engine did not start: " + (" | ".join(tail) or "no output."),
                          f"Check that '{python}' has betterdepth installed; full log: {stderr_path}")
    if ready.get("protocol") != PROTOCOL:
        process.kill()
        process.wait()
        raise EngineError("PROTOCOL_MISMATCH",
                          f"The engine speaks protocol {ready.get('protocol')}, this client {PROTOCOL}.",
                          "Update the add-on and the engine to the same release.")
    # Nothing else should come on stdout; drain it anyway so a stray print can never block the engine.
    threading.Thread(target=lambda: process.stdout.read(), daemon=True).start()
    return ManagedEngine(process, ready, token_file.read_text().strip(), state_dir, host)


def _read_ready_line(process: subprocess.Popen, timeout: float) -> dict | None:
    """The ready JSON line, or None if the process ended or the time ran out first."""
    result: list = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not result or not result[0]:
        return None
    try:
        ready = json.loads(result[0])
    except ValueError:
        return None
    return ready if ready.get("event") == "ready" else None

