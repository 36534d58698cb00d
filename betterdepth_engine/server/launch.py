"""Running the service: listening socket, the ready line, the parent watch, logging, clean exit.

Launch contract (clients depend on it): once the server accepts connections it prints exactly one JSON line on
stdout, {"event": "ready", "port": N, "protocol": "1", "pid": P, "device": "..."}; with a parent pid it exits
within 2 s of that process's death; logs go to stderr and to <state dir>/engine.log, never to stdout.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import socket
import sys
import threading
import time
from pathlib import Path

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.server.settings import PROTOCOL_VERSION, ServerSettings

log = logging.getLogger("betterdepth.server")
PARENT_POLL_S = 0.25
PARENT_EXIT_GRACE_S = 1.5


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_or_create_token(path: Path) -> str:
    """The token in `path`, or a new random one written there readable by its owner only (0600)."""
    if path.exists():
        token = path.read_text().strip()
        if len(token) < 16:
            raise BetterDepthError(BetterDepthError.BAD_INPUT, f"The token in '{path}' is too short.",
                                   "Delete the file to get a new random token, or write at least 16 characters.")
        return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    return token


def _configure_logging(state_dir: Path) -> None:
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers = [logging.StreamHandler(sys.stderr), logging.FileHandler(state_dir / "engine.log")]
    for handler in handlers:
        handler.setFormatter(formatter)
    for name in ("betterdepth", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = handlers
        logger.propagate = False
        logger.setLevel(logging.INFO if name != "uvicorn.access" else logging.WARNING)


def _process_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _watch_parent(pid: int, stop) -> None:
    while _process_alive(pid):
        time.sleep(PARENT_POLL_S)
    log.warning("parent process %d is gone: shutting down", pid)
    stop()
    # The contract is an exit within 2 s: if a model step or a client holds the graceful path up, leave anyway
    # (an interrupted job is reported as ENGINE_RESTARTED when the state folder is next served).
    time.sleep(PARENT_EXIT_GRACE_S)
    log.warning("forced exit after the parent's death")
    logging.shutdown()
    os._exit(0)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise BetterDepthError(BetterDepthError.BAD_INPUT, f"Cannot listen on {host}:{port}: {error.strerror}.",
                               "Use --port 0 to let the system pick a free port.") from None
    sock.listen(128)
    return sock


def serve(settings: ServerSettings, host: str, port: int, parent_pid: int | None) -> int:
    import uvicorn

    from betterdepth_engine.server.app import create_app

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    _configure_logging(settings.state_dir)
    sock = _bind(host, port)
    server: uvicorn.Server | None = None

    def request_shutdown() -> None:
        if server is not None:
            server.should_exit = True

    app = create_app(settings, request_shutdown)
    config = uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=1, lifespan="off")
    server = uvicorn.Server(config)
    device = str(app.state.service.models.resolve_device())

    def announce_when_ready() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.01)
        if server.started:
            ready = {"event": "ready", "port": sock.getsockname()[1], "protocol": PROTOCOL_VERSION,
                     "pid": os.getpid(), "device": device}
            print(json.dumps(ready), flush=True)
            log.info("engine ready on %s:%d (device %s, state %s)", host, ready["port"], device, settings.state_dir)

    threading.Thread(target=announce_when_ready, name="betterdepth-ready", daemon=True).start()
    if parent_pid is not None:
        threading.Thread(target=_watch_parent, args=(parent_pid, request_shutdown), name="betterdepth-parent",
                         daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        app.state.service.runner.stop()
        app.state.service.store.close()
        log.info("engine stopped")
    return 0
