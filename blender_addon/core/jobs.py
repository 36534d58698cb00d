"""One engine job from the add-on's side: a small state machine, run on a worker thread or synchronously.

The worker thread only talks HTTP and writes files into the job's own folder; it reports through a
queue.Queue that the main thread drains (a modal timer in the UI, a plain loop in background mode), because
Blender data must never be touched off the main thread.
"""

from __future__ import annotations

import enum
import json
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

# Files fetched per task (protocol v1 names); the preview is fetched while the job runs.
RESULT_FILES = {
    "estimate": ("disparity.npy", "base_disparity.npy", "meta.json"),
    "mesh": ("mesh.npz", "disparity.npy", "meta.json"),
    "relief": ("mesh.npz", "height.exr", "meta.json"),
}


class JobState(str, enum.Enum):
    PREPARING = "preparing"  # the add-on writes the input (e.g. renders the camera)
    SUBMITTING = "submitting"  # uploading the image, creating the engine job
    QUEUED = "queued"
    RUNNING = "running"
    DOWNLOADING = "downloading"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


_ORDER = [JobState.PREPARING, JobState.SUBMITTING, JobState.QUEUED, JobState.RUNNING, JobState.DOWNLOADING,
          JobState.SUCCEEDED]


def can_move(old: JobState, new: JobState) -> bool:
    """Forward along the happy path (skipping allowed: a job may start running at once), or to FAILED/CANCELLED
    from any state that is not final. Final states never change."""
    if old.final:
        return False
    if new in (JobState.FAILED, JobState.CANCELLED):
        return True
    return new in _ORDER and _ORDER.index(new) > _ORDER.index(old)


class JobError(Exception):
    """What went wrong, in the engine's terms: a stable code, a message and what to do."""

    def __init__(self, code: str, message: str, hint: str = ""):
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint

    @classmethod
    def from_exception(cls, error: Exception) -> "JobError":
        """Any client error (EngineError has code/message/hint) or an unexpected one, as a JobError."""
        if isinstance(error, JobError):
            return error
        code = getattr(error, "code", None)
        if code:
            return cls(code, getattr(error, "message", str(error)), getattr(error, "hint", "") or "")
        return cls("CLIENT_ERROR", f"{type(error).__name__}: {error}", "See the system console for details.")

    def report(self) -> str:
        """One line for Blender's report: message, then what to do."""
        return f"{self.message} {self.hint}".strip() if self.hint else self.message


@dataclass
class JobProgress:
    """A snapshot for the UI: state, the engine's stage and fraction, a human line."""

    state: JobState
    stage: str = ""
    fraction: float = 0.0
    message: str = ""


@dataclass
class JobRequest:
    task: str  # estimate | mesh | relief
    image_path: Path
    estimate: dict = field(default_factory=dict)
    mesh: dict | None = None
    relief: dict | None = None
    results: tuple[str, ...] = ()  # files to fetch; empty: the task's usual ones (RESULT_FILES)
    reuse_job: str | None = None  # an earlier job on the same image and models: its depth, no model run
    base_prediction: Path | None = None  # a disparity file from any depth model, used as the base (uploaded)
    reuse_disparity: Path | None = None  # a disparity kept with the .blend: the job's depth (no model run)

    def __post_init__(self):
        if self.task not in RESULT_FILES:
            raise ValueError(f"Unknown task '{self.task}'; use one of {', '.join(RESULT_FILES)}.")
        self.results = tuple(self.results) or RESULT_FILES[self.task]


class DepthJobs:
    """Which engine job holds the depth of which input (this Blender session only), so that Create Mesh after
    Estimate Depth on the same image with the same models reuses it instead of running the models again."""

    def __init__(self):
        self._jobs: dict[tuple, str] = {}

    @staticmethod
    def key(engine: tuple, input_key: tuple | None, estimate: dict) -> tuple | None:
        """None when the input cannot be recognised again (a camera render, an edited image)."""
        return None if input_key is None else (engine, input_key, json.dumps(estimate, sort_keys=True))

    def get(self, key: tuple | None) -> str | None:
        return None if key is None else self._jobs.get(key)

    def remember(self, key: tuple | None, job_id: str) -> None:
        if key is not None:
            self._jobs[key] = job_id


class EngineJob:
    """Submit, follow, download. `run()` blocks; `start()` runs it on a thread and reports through `events`.

    events carries ("progress", JobProgress), ("preview", Path), then one final ("succeeded", {name: Path}),
    ("failed", JobError) or ("cancelled", JobError).
    """

    def __init__(self, connect, request: JobRequest, result_dir: Path):
        self._connect = connect  # () -> engine client; may start the engine, so it runs on the job's thread
        self.client = None
        self.request = request
        self.result_dir = Path(result_dir)
        self.events: queue.Queue = queue.Queue()
        self.progress = JobProgress(JobState.PREPARING, message="Preparing")
        self.job_id: str | None = None
        self.reused = False  # True when the engine reused an earlier job's depth
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._preview_stage = None

    # -- state ---------------------------------------------------------------------------------------------
    def _move(self, state: JobState, stage: str = "", fraction: float | None = None, message: str = ""):
        if state != self.progress.state and not can_move(self.progress.state, state):
            return  # e.g. a late progress event after a cancel: the job's outcome is already decided
        fraction = self.progress.fraction if fraction is None else fraction
        self.progress = JobProgress(state, stage, max(0.0, min(1.0, fraction)), message or state.value.title())
        self.events.put(("progress", self.progress))

    def _on_status(self, status: dict) -> None:
        state = {"queued": JobState.QUEUED, "running": JobState.RUNNING}.get(status.get("state"))
        if state is None:
            return
        stage = status.get("stage") or ""
        if state is JobState.QUEUED:
            message = f"Queued (position {status.get('queue_position')})"
        else:
            step, total = status.get("step"), status.get("total_steps")
            message = f"{stage.title()} {step}/{total}" if stage and total else (status.get("message") or stage.title())
        self._move(state, stage, float(status.get("fraction") or 0.0), message)
        if "preview.png" in (status.get("results") or []) and stage != self._preview_stage:
            self._preview_stage = stage
            try:
                path = self.result_dir / f"preview_{stage or 'running'}.png"
                self.client.download(self.job_id, "preview.png", path)
                self.events.put(("preview", path))
            except Exception:  # a preview is a courtesy: the job's own outcome decides success
                pass

    # -- running -------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Path]:
        """Run to the end on this thread. Returns {result name: local path}; raises JobError."""
        try:
            files = self._run()
        except Exception as error:
            job_error = JobError.from_exception(error)
            cancelled = job_error.code == "CANCELLED" or self._cancel.is_set()
            if cancelled and job_error.code != "CANCELLED":
                job_error = JobError("CANCELLED", "The job was cancelled.", "")
            self._move(JobState.CANCELLED if cancelled else JobState.FAILED, message=job_error.message)
            self.events.put(("cancelled" if cancelled else "failed", job_error))
            raise job_error from None
        self._move(JobState.SUCCEEDED, fraction=1.0, message="Done")
        self.events.put(("succeeded", files))
        return files

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise JobError("CANCELLED", "The job was cancelled.", "")

    def _run(self) -> dict[str, Path]:
        request = self.request
        self.result_dir.mkdir(parents=True, exist_ok=True)
        self._check_cancel()
        self._move(JobState.SUBMITTING, message="Connecting to the engine")
        self.client = self._connect()
        self._check_cancel()
        sections = {name: value for name, value in
                    (("estimate", request.estimate), ("mesh", request.mesh), ("relief", request.relief))
                    if value is not None}
        if request.base_prediction is not None:
            self._move(JobState.SUBMITTING, message="Sending the external depth to the engine")
            path = Path(request.base_prediction)
            upload = self.client.upload(path.read_bytes(), path.name)
            sections["estimate"] = {**sections["estimate"],
                                    "base_prediction": {"upload_id": upload["upload_id"], "space": "disparity"}}
        if request.reuse_disparity is not None:
            job = self._submit_kept(sections)
        else:
            job = self._submit_reusing(sections) if request.reuse_job else None
        if job is None:
            self._move(JobState.SUBMITTING, message="Sending the image to the engine")
            image = Path(request.image_path)
            if not image.is_file():  # a re-run whose depth the engine dropped, with its input gone or changed
                raise JobError("DEPTH_GONE", f"The engine no longer has the depth of job {request.reuse_job}, and "
                               "the input image is gone or changed.", "Run the original operator again.")
            # Uploading works the same for a local and a remote engine, and needs no shared folders.
            job = self.client.submit(request.task, image_bytes=image.read_bytes(), filename=image.name, **sections)
        self.job_id = job["job_id"]
        if self._cancel.is_set():  # cancelled while submitting: the engine job exists now, so stop it there
            self.cancel()
        # A cancel on the engine ends the wait with EngineError CANCELLED.
        self.client.wait(self.job_id, on_progress=self._on_status)
        self._move(JobState.DOWNLOADING, message="Fetching results")
        files = {}
        for name in request.results:
            files[name] = self.result_dir / name
            self.client.download(self.job_id, name, files[name])
        return files

    def poll(self, on_progress, on_preview, block: bool) -> tuple | None:
        """Hand the queued events to the callbacks (on this thread); the final (kind, payload) once it came.

        block=False returns None when the queue is empty (a modal timer's tick); block=True waits for the end
        (background mode, where nothing else needs the main thread).
        """
        while True:
            try:
                kind, payload = self.events.get(timeout=0.5) if block else self.events.get_nowait()
            except queue.Empty:
                if block:
                    continue
                return None
            if kind == "progress":
                on_progress(payload)
            elif kind == "preview":
                on_preview(payload)
            else:
                return kind, payload

    def _submit_kept(self, sections: dict) -> dict:
        """Submit on a disparity kept with the .blend (uploaded), with the input image when it is still there
        (colours, EXIF focal); the engine runs no model."""
        self._move(JobState.SUBMITTING, message="Sending the depth kept with the .blend")
        path = Path(self.request.reuse_disparity)
        upload = self.client.upload(path.read_bytes(), path.name)
        estimate = {key: value for key, value in sections["estimate"].items() if key != "base_prediction"}
        image = Path(self.request.image_path)
        image_source = {"image_bytes": image.read_bytes(), "filename": image.name} if image.is_file() else {}
        job = self.client.submit(self.request.task, reuse_disparity=upload["upload_id"],
                                 **{**sections, "estimate": estimate}, **image_source)
        self.reused = True
        return job

    def _submit_reusing(self, sections: dict) -> dict | None:
        """Submit on the earlier job's depth; None when the engine no longer has that job (restarted, or its
        retention deleted it), so the caller sends the image instead."""
        self._move(JobState.SUBMITTING, message="Reusing the depth of the last job on this image")
        try:
            job = self.client.submit(self.request.task, reuse_job=self.request.reuse_job, **sections)
        except Exception as error:
            if getattr(error, "code", None) != "NOT_FOUND":
                raise
            return None
        self.reused = True
        return job

    def start(self) -> None:
        """Run on a daemon worker thread; follow `events` on the main thread."""
        self._thread = threading.Thread(target=self._run_quietly, name="betterdepth-job", daemon=True)
        self._thread.start()

    def _run_quietly(self) -> None:
        try:
            self.run()
        except JobError:
            pass  # already reported through events

    def cancel(self) -> None:
        """Stop before any further step, and ask the engine to cancel the job (which ends the client's wait)."""
        self._cancel.set()
        if self.job_id is not None and self.client is not None:
            try:
                self.client.cancel(self.job_id)
            except Exception:
                pass  # unreachable engine: wait() fails on its own and the job ends as cancelled

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
