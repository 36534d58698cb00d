"""`betterdepth serve`: the engine as a local (or remote) HTTP service for Blender, batch jobs and other tools."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run the engine as an HTTP service (what Blender talks to)"
DESCRIPTION = """\
Run the engine as a service: one process owns the models (and the GPU) and runs jobs from a queue, with
progress, cancel, results kept in a state folder, and a bearer token on every request. Protocol v1 is
described in docs/architecture.md and docs/openapi.json.

When it accepts connections it prints one JSON line on stdout:
  {"event": "ready", "port": N, "protocol": "1", "pid": P, "device": "cpu"}
"""

EPILOG = """\
examples:
  betterdepth serve --port 8765 --allow-dir ~/photos          (token written to ~/.cache/betterdepth/engine/token)
  betterdepth serve --host 127.0.0.1 --port 0 --parent-pid $$ --token-file /tmp/bd-token   (how Blender starts it)
"""


def default_state_dir() -> Path:
    return Path.home() / ".cache" / "betterdepth" / "engine"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("serve", help=HELP,
                                   description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default loopback; other addresses need the token)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 = any free port (default %(default)s)")
    parser.add_argument("--token-file", type=Path,
                        help="file holding the bearer token; created with a random token (mode 0600) if missing "
                             "(default: STATE_DIR/token)")
    parser.add_argument("--no-token", action="store_true",
                        help="accept requests without a token (loopback only; any local program may use the engine)")
    parser.add_argument("--state-dir", type=Path, default=default_state_dir(),
                        help="jobs database, results, uploads and engine.log (default %(default)s)")
    parser.add_argument("--allow-dir", type=Path, action="append", default=[], metavar="DIR",
                        help="clients may name image files inside DIR (repeatable); otherwise they upload them")
    parser.add_argument("--parent-pid", type=int, help="exit when this process exits (managed engines)")
    parser.add_argument("--idle-unload-s", type=float, default=600.0,
                        help="unload models after this many idle seconds; 0 = never (default %(default)s)")
    parser.add_argument("--retention-s", type=float, default=86400.0,
                        help="delete finished jobs' results after this many seconds (default %(default)s)")
    parser.add_argument("--max-queue", type=int, default=64, help="queued jobs at most (default %(default)s)")
    parser.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload (default %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    parser.add_argument("--dtype", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                        help="auto = fp16 on CUDA, fp32 on CPU")
    parser.set_defaults(run=run)


def settings_from_args(args):
    from betterdepth_engine.errors import BetterDepthError
    from betterdepth_engine.server.launch import is_loopback, read_or_create_token
    from betterdepth_engine.server.settings import ServerSettings

    def refuse(message: str, hint: str):
        return BetterDepthError(BetterDepthError.BAD_INPUT, message, hint)

    if args.no_token and not is_loopback(args.host):
        raise refuse(f"Refusing to listen on {args.host} without a token: anyone who can reach it could use it.",
                     "Drop --no-token (a token file is then used), or listen on 127.0.0.1.")
    if args.no_token and args.token_file:
        raise refuse("--no-token and --token-file contradict each other.", "Pass one of them.")
    for name, value, minimum in (("--max-queue", args.max_queue, 1), ("--max-upload-mb", args.max_upload_mb, 0.001),
                                 ("--idle-unload-s", args.idle_unload_s, 0), ("--retention-s", args.retention_s, 1)):
        if value < minimum:
            raise refuse(f"{name} must be at least {minimum}, got {value}.", f"Pass {name} {max(minimum, 1)} or more.")
    if not 0 <= args.port <= 65535:
        raise refuse(f"--port must be between 0 and 65535, got {args.port}.", "Use 0 for any free port.")
    allow_dirs = []
    for folder in args.allow_dir:
        if not folder.is_dir():
            raise refuse(f"--allow-dir '{folder}' is not a folder.", "Pass existing folders.")
        allow_dirs.append(folder.resolve())
    state_dir = args.state_dir.expanduser()
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise refuse(f"Cannot use '{state_dir}' as the state folder: {error.strerror}.",
                     "Pass a writable --state-dir.") from None
    token = None if args.no_token else read_or_create_token(args.token_file or state_dir / "token")
    return ServerSettings(
        state_dir=state_dir, token=token, allow_dirs=tuple(allow_dirs), idle_unload_s=args.idle_unload_s,
        retention_s=args.retention_s, max_queue=args.max_queue, max_upload_bytes=int(args.max_upload_mb * 2**20),
        device=args.device, dtype=args.dtype,
    )


def run(args) -> int:
    from betterdepth_engine.server.launch import serve

    return serve(settings_from_args(args), args.host, args.port, args.parent_pid)
