"""Where a model named on the command line lives: a local folder, or a hub snapshot (cache first)."""

from __future__ import annotations

import os
from pathlib import Path

from betterdepth_engine.errors import BetterDepthError


def offline_requested() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE once, at import; reading it per call also honours a later change.
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(name, "").upper() in ("1", "ON", "YES", "TRUE") for name in names)


def resolve_model_folder(source: str | os.PathLike, what: str) -> Path:
    """A local folder as is; a hub id from the local cache, or downloaded only then (the user named it)."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BetterDepthError(BetterDepthError.BAD_MODEL, f"{what.capitalize()} '{source}' is a file, not a "
                                   "model folder.", "Pass the model's folder.")
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(str(source))
    except HFValidationError:
        raise BetterDepthError(
            BetterDepthError.MODEL_NOT_FOUND, f"{what.capitalize()} '{source}' is neither a folder nor a hub id.",
            "Check the path, or pass a Hugging Face hub id such as 'prs-eth/marigold-depth-v1-1'.",
        ) from None
    try:
        return Path(snapshot_download(str(source), local_files_only=True))
    except Exception:  # not cached: only now try the network, unless the user asked for offline
        if offline_requested():
            error_text = "not in the local cache and HF_HUB_OFFLINE is set"
        else:
            try:
                return Path(snapshot_download(str(source)))
            except Exception as error:  # offline, 404, gated, timeouts: the hub client raises many kinds
                error_text = type(error).__name__
    raise BetterDepthError(
        BetterDepthError.MODEL_NOT_FOUND,
        f"Could not get {what} '{source}' from the Hugging Face hub ({error_text}).",
        f"Without network, download it elsewhere (`hf download {source} --local-dir DIR`) and pass DIR.",
    )
