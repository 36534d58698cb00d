"""Job records in SQLite: what survives the engine being killed.

One row per job: the request, its state, the final stage and the error. Live progress (the current step,
the ETA) is kept in memory by the worker and never written per step; only state changes reach the disk.
SQLite in WAL mode with one connection guarded by a lock: the server's threads (request handlers, the worker,
the janitor) take turns, and each write is one short transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = ("succeeded", "failed", "cancelled")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    stage TEXT,
    error TEXT,
    idempotency_key TEXT UNIQUE,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
"""


@dataclass
class JobRecord:
    id: str
    task: str
    request: dict
    state: str
    stage: str | None
    error: dict | None
    idempotency_key: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRecord:
        return cls(
            id=row["id"], task=row["task"], request=json.loads(row["request"]), state=row["state"],
            stage=row["stage"], error=json.loads(row["error"]) if row["error"] else None,
            idempotency_key=row["idempotency_key"], created_at=row["created_at"], started_at=row["started_at"],
            finished_at=row["finished_at"],
        )


class JobStore:
    """The `jobs` table of `<state dir>/jobs.sqlite3`."""

    def __init__(self, path: Path):
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def insert(self, job_id: str, task: str, request: dict, idempotency_key: str | None) -> JobRecord:
        """A new queued job, or the existing one with this idempotency key (the retried submission)."""
        with self._lock:
            if idempotency_key is not None:
                row = self._db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
                if row is not None:
                    return JobRecord.from_row(row)
            self._db.execute(
                "INSERT INTO jobs (id, task, request, state, idempotency_key, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, task, json.dumps(request), "queued", idempotency_key, time.time()),
            )
            return JobRecord.from_row(self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return JobRecord.from_row(row) if row else None

    def get_by_key(self, idempotency_key: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
        return JobRecord.from_row(row) if row else None

    def all(self) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created_at").fetchall()
        return [JobRecord.from_row(row) for row in rows]

    def mark_running(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE jobs SET state = 'running', started_at = ? WHERE id = ?", (time.time(), job_id))

    def set_stage(self, job_id: str, stage: str) -> None:
        with self._lock:
            self._db.execute("UPDATE jobs SET stage = ? WHERE id = ?", (stage, job_id))

    def finish(self, job_id: str, state: str, error: dict | None = None) -> None:
        assert state in FINAL_STATES
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state = ?, error = ?, finished_at = ? WHERE id = ?",
                (state, json.dumps(error) if error else None, time.time(), job_id),
            )

    def fail_unfinished(self, error: dict) -> list[str]:
        """Jobs left queued or running by an engine that died: failed with `error`. Returns their ids."""
        with self._lock:
            ids = [row["id"] for row in self._db.execute("SELECT id FROM jobs WHERE state IN ('queued', 'running')")]
            self._db.execute(
                "UPDATE jobs SET state = 'failed', error = ?, finished_at = ? WHERE state IN ('queued', 'running')",
                (json.dumps(error), time.time()),
            )
        return ids

    def expired(self, finished_before: float) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?", (finished_before,)
            ).fetchall()
        return [row["id"] for row in rows]

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
