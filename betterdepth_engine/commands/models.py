"""`betterdepth models`: which models are named, shipped and cached; `betterdepth models download NAME`."""

from __future__ import annotations

import argparse

HELP = "list the model aliases, the shipped and the cached models; download one"

EPILOG = """\
examples:
  betterdepth models                                   (aliases, shipped defaults, hub cache)
  betterdepth models download depth-anything-v2-small  (into the Hugging Face cache, with progress)
Without network here: run the download on another machine, copy the folder and pass its path as --base/--refiner.
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("models", help=HELP, description=HELP, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="the aliases, the shipped models and the hub cache (the default action)")
    download = actions.add_parser("download", help="download a model into the hub cache (needs network)")
    download.add_argument("name", metavar="NAME", help="an alias (see `betterdepth models`) or a hub id")
    parser.set_defaults(run=run, action="list")


def _size(path) -> str:
    total = sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    return f"{total / 1e6:,.1f} MB"


def list_models() -> list[str]:
    """Lines of the listing: shipped defaults, aliases (cached or not), other cached hub models."""
    from betterdepth_engine.models.hub import cached_snapshot
    from betterdepth_engine.models.loading import BASE_ALIASES, DEFAULT_WEIGHTS, REFINER_ALIASES

    lines = ["shipped (--base default, --refiner default):"]
    for kind in ("base", "refiner"):
        folder = DEFAULT_WEIGHTS / kind
        status = f"{_size(folder)}  {folder}" if folder.is_dir() else "missing from this installation"
        lines.append(f"  {kind:<26} {status}")
    aliases = [(name, repo, "base") for name, repo in BASE_ALIASES.items()]
    aliases += [(name, repo, "refiner") for name, repo in REFINER_ALIASES.items()]
    lines.append("aliases (fetched from the Hugging Face hub when first used, then cached):")
    known = set()
    for name, repo, kind in aliases:
        if (name, repo) in known:
            continue
        known.add((name, repo))
        kinds = "/".join(k for n, r, k in aliases if (n, r) == (name, repo))
        snapshot = cached_snapshot(repo)
        status = f"cached, {_size(snapshot)}  {snapshot}" if snapshot else "not downloaded"
        lines.append(f"  {name:<26} {kinds:<13} {repo:<44} {status}")
    others = [repo for repo in _cached_repos() if repo not in {r for _, r, _ in aliases}]
    if others:
        lines.append("other models in the hub cache (usable by hub id):")
        lines += [f"  {repo:<41} cached, {_size(snapshot)}  {snapshot}"
                  for repo in others if (snapshot := cached_snapshot(repo))]
    return lines


def _cached_repos() -> list[str]:
    from huggingface_hub import scan_cache_dir

    try:
        return sorted(repo.repo_id for repo in scan_cache_dir().repos if repo.repo_type == "model")
    except Exception:  # no cache folder yet, or one the hub client cannot read: nothing cached to list
        return []


def run(args) -> int:
    if args.action == "download":
        from betterdepth_engine.models.hub import download
        from betterdepth_engine.models.loading import BASE_ALIASES, REFINER_ALIASES

        repo = {**REFINER_ALIASES, **BASE_ALIASES}.get(args.name, args.name)
        print(download(repo))
        return 0
    print("\n".join(list_models()))
    return 0
