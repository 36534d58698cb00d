"""Where a model named on the command line lives: a local folder, or a hub snapshot (cache first).

Without network the hub client retries each request for half a minute, so before any download one quick
request asks the hub whether the model exists; an unreachable hub or an unknown name fails at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from betterdepth_engine.errors import BetterDepthError

HUB_CHECK_TIMEOUT_S = 1.5


def offline_requested() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE once, at import; reading it per call also honours a later change.
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(name, "").upper() in ("1", "ON", "YES", "TRUE") for name in names)


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def fetch_hint(repo_id: str) -> str:
    return (f"On a machine with network run `betterdepth models download {repo_id}` (or `hf download {repo_id} "
            "--local-dir DIR`), copy the folder here and pass its path instead of the name.")


def hub_problem(repo_id: str, timeout: float = HUB_CHECK_TIMEOUT_S) -> str | None:
    """None if the hub says `repo_id` exists; else why it cannot be fetched. One request, no retries."""
    import urllib.error
    import urllib.request

    # The model's metadata (a small JSON document): 200 if it exists, 404 if not, 401/403 if private or gated.
    request = urllib.request.Request(f"{hub_endpoint()}/api/models/{repo_id}")
    from huggingface_hub import get_token

    token = get_token()
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
        return None
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return "the hub has no model of that name"
        if error.code in (401, 403):
            return "the model is private or gated (log in with `hf auth login` and accept its licence)"
        return f"the hub answered HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:  # no route, DNS failure, refused, timed out
        reason = getattr(error, "reason", error)
        return f"the Hugging Face hub is unreachable ({reason})"


def cached_snapshot(repo_id: str) -> Path | None:
    """The local snapshot of a hub model, or None if it is not in the cache."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # the hub client raises several types for "not cached"
        return None


def _check_repo_id(source: str, what: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(source)
    except HFValidationError:
        raise BetterDepthError(
            BetterDepthError.MODEL_NOT_FOUND, f"{what.capitalize()} '{source}' is neither a folder nor a hub id.",
            "Check the path, or pass a Hugging Face hub id such as 'prs-eth/marigold-depth-v1-1' "
            "(`betterdepth models` lists the aliases).",
        ) from None


def download(repo_id: str, what: str = "model") -> Path:
    """Download a hub model into the cache (with progress bars), after one quick check that it exists."""
    from huggingface_hub import snapshot_download

    _check_repo_id(repo_id, what)
    if offline_requested():
        problem = "HF_HUB_OFFLINE is set"
    else:
        problem = hub_problem(repo_id)
    if problem is None:
        try:
            return Path(snapshot_download(repo_id))
        except Exception as error:  # dropped connections, full disk: the hub client raises many kinds
            problem = f"the download failed ({type(error).__name__}: {error})"
    raise BetterDepthError(BetterDepthError.MODEL_NOT_FOUND, f"Could not get {what} '{repo_id}': {problem}.",
                           fetch_hint(repo_id))


def resolve_model_folder(source: str | os.PathLike, what: str) -> Path:
    """A local folder as is; a hub id from the local cache, or downloaded only then (the user named it)."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BetterDepthError(BetterDepthError.BAD_MODEL, f"{what.capitalize()} '{source}' is a file, not a "
                                   "model folder.", "Pass the model's folder.")
        return path
    _check_repo_id(str(source), what)
    return cached_snapshot(str(source)) or download(str(source), what)
