"""The engine service's settings (one place; `betterdepth serve` fills them from its options)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROTOCOL_VERSION = "1"


@dataclass(frozen=True)
class ServerSettings:
    state_dir: Path  # jobs.sqlite3, jobs/<id>/, uploads/, engine.log
    token: str | None  # bearer token every request must send; None only for `--no-token` on loopback
    allow_dirs: tuple[Path, ...] = ()  # clients may name image files inside these folders (resolved)
    idle_unload_s: float = 600.0  # unload models after this long without a job; 0 = never
    retention_s: float = 86400.0  # delete a finished job's results this long after it finished
    max_queue: int = 64  # queued jobs beyond the running one
    max_upload_bytes: int = 200 * 1024 * 1024
    max_json_bytes: int = 1024 * 1024  # request bodies other than uploads
    device: str = "auto"
    dtype: str = "auto"

    @property
    def janitor_interval_s(self) -> float:
        """How often to look for idle models and expired jobs: often enough for short limits, at most every 5 s."""
        limits = [limit for limit in (self.retention_s, self.idle_unload_s) if limit > 0]
        return min([5.0, *(max(0.1, limit / 4) for limit in limits)])

    @property
    def jobs_dir(self) -> Path:
        return self.state_dir / "jobs"

    @property
    def uploads_dir(self) -> Path:
        return self.state_dir / "uploads"
