"""The job runner: a bounded FIFO queue, one model worker thread, cancel, live progress, restart recovery.

One worker owns the models (one GPU): jobs run one at a time in submission order. A job's live progress
(stage, step, fraction, ETA) lives in memory with every change in order, for event streams; state changes
go to the SQLite store, so a restarted engine knows what finished and what was interrupted.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.server import tasks
from betterdepth_engine.server.errors import ServiceError
from betterdepth_engine.server.models import ModelCache
from betterdepth_engine.server.settings import ServerSettings
from betterdepth_engine.server.store import FINAL_STATES, JobRecord, JobStore

log = logging.getLogger("betterdepth.server")

RESTARTED = {
    "code": "ENGINE_RESTARTED",
    "message": "The engine stopped while this job was queued or running; it was not finished.",
    "hint": "Submit the job again.",
}


HISTORY_LIMIT = 4096  # progress changes kept per job for event streams (a 1000-step job makes ~1010)


@dataclass
class Progress:
    """A job's live progress, and every change of it in order (what event streams send)."""

    state: str = "queued"
    stage: str | None = None
    step: int | None = None
    total_steps: int | None = None
    fraction: float = 0.0
    eta_s: float | None = None
    message: str = ""
    started: float = field(default_factory=time.monotonic)
    history: list[dict] = field(default_factory=list)
    dropped: int = 0  # changes that fell out of the bounded history

    def record(self) -> None:
        self.history.append({name: getattr(self, name) for name in
                             ("state", "stage", "step", "total_steps", "fraction", "eta_s", "message")})
        if len(self.history) > HISTORY_LIMIT:
            del self.history[0]
            self.dropped += 1


def _fraction(stage: str, step: int | None, total: int | None) -> float:
    start, end = tasks.STAGE_START[stage], tasks.STAGE_END[stage]
    if step is not None and total:
        return start + (end - start) * step / total
    return start


class JobRunner:
    def __init__(self, settings: ServerSettings, store: JobStore, models: ModelCache):
        self.settings = settings
        self.store = store
        self.models = models
        self._queue: collections.deque[str] = collections.deque()
        self._condition = threading.Condition()
        self._progress: dict[str, Progress] = {}
        self._cancel_requested: set[str] = set()
        self._listeners: dict[str, set] = collections.defaultdict(set)  # job id -> callables woken on a change
        self.running_job: str | None = None
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="betterdepth-worker", daemon=True)
        self._janitor = threading.Thread(target=self._clean, name="betterdepth-janitor", daemon=True)

    # Life cycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        interrupted = self.store.fail_unfinished(RESTARTED)
        for job_id in interrupted:
            shutil.rmtree(self.job_dir(job_id) / "results", ignore_errors=True)
            log.warning("job %s was interrupted by an engine restart: reported as ENGINE_RESTARTED", job_id)
        self._worker.start()
        self._janitor.start()

    def stop(self) -> None:
        """Cancel the running job and every queued one; wait for the worker."""
        with self._condition:
            self._stopping = True
            queued = list(self._queue)
            self._queue.clear()
            if self.running_job:
                self._cancel_requested.add(self.running_job)
            self._condition.notify_all()
        for job_id in queued:
            self._finish(job_id, "cancelled", {"code": "CANCELLED", "message": "The engine was shut down.",
                                               "hint": "Submit the job again."})
        self._worker.join(timeout=30)

    # Requests --------------------------------------------------------------------------------------------

    def job_dir(self, job_id: str) -> Path:
        return self.settings.jobs_dir / job_id

    def submit(self, request: dict, take_inputs) -> tuple[JobRecord, bool]:
        """Queue a job (request: a validated JobRequest as JSON). `take_inputs(input_dir)` links its uploads in.

        Returns (record, existing): an idempotency key seen before returns the earlier job and queues nothing.
        """
        key = request.get("idempotency_key")
        if key is not None:
            existing = self.store.get_by_key(key)
            if existing is not None:
                return existing, True
        with self._condition:
            if len(self._queue) >= self.settings.max_queue:
                raise ServiceError("QUEUE_FULL", f"The engine's queue is full ({self.settings.max_queue} jobs).",
                                   "Wait for queued jobs to finish, or cancel some.")
            job_id = uuid.uuid4().hex
            input_dir = self.job_dir(job_id) / "input"
            input_dir.mkdir(parents=True)
            try:
                take_inputs(input_dir)
                record = self.store.insert(job_id, request["task"], request, key)
            except BaseException:
                shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
                raise
            if record.id != job_id:  # a concurrent submission with the same key won the race
                shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
                return record, True
            self._progress[job_id] = Progress()
            self._record(job_id, self._progress[job_id])
            self._queue.append(job_id)
            self._condition.notify_all()
        return record, False

    def cancel(self, job_id: str) -> None:
        with self._condition:
            if job_id in self._queue:
                self._queue.remove(job_id)
                queued = True
            else:
                queued = False
                if self.running_job == job_id:
                    self._cancel_requested.add(job_id)
        if queued:
            self._finish(job_id, "cancelled", _cancelled_error())

    def delete(self, job_id: str) -> None:
        self.cancel(job_id)
        with self._condition:
            while self.running_job == job_id:
                self._condition.wait(timeout=0.1)
        self.store.delete(job_id)
        self._progress.pop(job_id, None)
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def queue_position(self, job_id: str) -> int | None:
        with self._condition:
            try:
                return self._queue.index(job_id)
            except ValueError:
                return None

    def queue_length(self) -> int:
        with self._condition:
            return len(self._queue)

    def progress(self, job_id: str) -> Progress:
        return self._progress.get(job_id) or Progress()

    def listen(self, job_id: str, wake) -> None:
        """Call `wake()` (from the worker's thread) whenever the job's progress changes."""
        self._listeners[job_id].add(wake)

    def unlisten(self, job_id: str, wake) -> None:
        self._listeners[job_id].discard(wake)
        if not self._listeners[job_id]:
            self._listeners.pop(job_id, None)

    def _record(self, job_id: str, progress: Progress) -> None:
        progress.record()
        for wake in list(self._listeners.get(job_id, ())):
            wake()

    def changes_since(self, job_id: str, index: int) -> tuple[list[dict], int]:
        """Progress changes numbered index, index + 1, ... (all since the job was queued), and the next number."""
        progress = self._progress.get(job_id)
        if progress is None:
            return [], index
        start = max(index - progress.dropped, 0)
        changes = progress.history[start:]
        return changes, progress.dropped + start + len(changes)

    def results(self, job_id: str) -> list[str]:
        folder = self.job_dir(job_id) / "results"
        if not folder.is_dir():
            return []
        return sorted(path.name for path in folder.iterdir() if not path.name.startswith("."))

    # The worker ------------------------------------------------------------------------------------------

    def _next_job(self) -> str | None:
        with self._condition:
            while not self._queue and not self._stopping:
                self._condition.wait()
            if self._stopping:
                return None
            self.running_job = self._queue.popleft()
            return self.running_job

    def _work(self) -> None:
        while (job_id := self._next_job()) is not None:
            try:
                self._run(job_id)
            finally:
                with self._condition:
                    self.running_job = None
                    self._cancel_requested.discard(job_id)
                    self._condition.notify_all()

    def _run(self, job_id: str) -> None:
        record = self.store.get(job_id)
        self.store.mark_running(job_id)
        progress = self._progress.setdefault(job_id, Progress())
        progress.started, progress.state = time.monotonic(), "running"
        self._record(job_id, progress)
        results_dir = self.job_dir(job_id) / "results"
        results_dir.mkdir(parents=True, exist_ok=True)
        context = tasks.JobContext(
            job_id=job_id, request=record.request, input_dir=self.job_dir(job_id) / "input", results_dir=results_dir,
            jobs_dir=self.settings.jobs_dir, models=self.models,
            report=lambda stage, step, total: self._report(job_id, stage, step, total),
        )
        log.info("job %s (%s) started", job_id, record.task)
        try:
            tasks.run(context)
        except tasks.JobCancelled:
            self._finish(job_id, "cancelled", _cancelled_error())
        except BetterDepthError as error:
            self._finish(job_id, "failed", error.to_dict())
        except MemoryError:
            self._finish(job_id, "failed", {
                "code": BetterDepthError.OUT_OF_MEMORY, "message": "The engine ran out of memory on this job.",
                "hint": "Use a smaller image, processing resolution or ensemble size."})
        except Exception as error:  # noqa: BLE001 - a job fails alone; the engine keeps serving
            log.exception("job %s failed unexpectedly", job_id)
            self._finish(job_id, "failed", {
                "code": "INTERNAL", "message": f"The engine failed on this job: {type(error).__name__}: {error}",
                "hint": "See the engine log for details; please report it."})
        else:
            self._finish(job_id, "succeeded", None)
        finally:
            self.models.last_used = time.monotonic()

    def _report(self, job_id: str, stage: str, step: int | None, total: int | None) -> None:
        """Progress from the job, and the point where a cancelled job stops (between steps and stages)."""
        if job_id in self._cancel_requested:
            raise tasks.JobCancelled
        progress = self._progress[job_id]
        if stage != progress.stage:
            self.store.set_stage(job_id, stage)
            log.info("job %s: %s", job_id, stage)  # the log shows which stages each job ran (reuse skips the models)
        progress.stage, progress.step, progress.total_steps = stage, step, total
        progress.fraction = max(progress.fraction, _fraction(stage, step, total))
        elapsed = time.monotonic() - progress.started
        # Only once the work is under way: the loading stage's time says nothing about the rest.
        progress.eta_s = None
        if progress.fraction >= 0.2:
            progress.eta_s = round(elapsed * (1 - progress.fraction) / progress.fraction, 2)
        self._record(job_id, progress)

    def _finish(self, job_id: str, state: str, error: dict | None) -> None:
        assert state in FINAL_STATES
        if state != "succeeded":
            shutil.rmtree(self.job_dir(job_id) / "results", ignore_errors=True)  # no partial results
        self.store.finish(job_id, state, error)
        progress = self._progress.setdefault(job_id, Progress())
        if state == "succeeded":
            progress.fraction, progress.eta_s = 1.0, 0.0
        progress.message = {"succeeded": "done", "cancelled": "cancelled"}.get(state, (error or {}).get("message", ""))
        progress.state = state
        self._record(job_id, progress)
        log.info("job %s %s%s", job_id, state, f": [{error['code']}] {error['message']}" if error else "")

    # Housekeeping ----------------------------------------------------------------------------------------

    def _clean(self) -> None:
        while not self._stopping:
            time.sleep(self.settings.janitor_interval_s)
            try:
                self.clean_once()
            except Exception:  # noqa: BLE001 - housekeeping must never stop the engine
                log.exception("housekeeping failed")

    def clean_once(self) -> None:
        """Unload idle models; delete jobs and uploads past their retention time."""
        idle_limit = self.settings.idle_unload_s
        if idle_limit and self.models.loaded() and self.running_job is None and not self.queue_length():
            if time.monotonic() - self.models.last_used > idle_limit:
                self.models.unload()
        cutoff = time.time() - self.settings.retention_s
        for job_id in self.store.expired(cutoff):
            log.info("job %s past its retention time: deleted", job_id)
            self.delete(job_id)
        uploads = self.settings.uploads_dir
        for path in uploads.iterdir() if uploads.is_dir() else ():
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)


def _cancelled_error() -> dict:
    return {"code": BetterDepthError.CANCELLED, "message": "The job was cancelled.", "hint": ""}


def link_or_copy(source: Path, destination: Path) -> None:
    """Give a job its own name for an uploaded file (a hard link: no copy of the bytes)."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)
