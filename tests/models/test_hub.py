"""Models named by hub id: a quick, clear failure without network; `betterdepth models` lists and downloads."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from betterdepth_engine import cli
from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.models import loading
from betterdepth_engine.models.hub import hub_problem
from tests.tiny_models import build_tiny_depth_anything


@pytest.fixture
def blocked_network(monkeypatch):
    """Every name lookup and connect fails at once, as on a machine without network; records the attempts."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.mark.parametrize("load", [loading.load_base_model, loading.load_refiner])
def test_unknown_model_fails_at_once_without_network(empty_hub_cache, blocked_network, load):
    # Import time is not what is measured.
    import betterdepth_engine.models.default_base  # noqa: F401
    import betterdepth_engine.models.transformers_base  # noqa: F401
    import transformers.models.auto  # noqa: F401

    start = time.perf_counter()
    with pytest.raises(BetterDepthError) as error:
        load("nobody-here/no-such-model")
    assert time.perf_counter() - start < 2  # the hub client's own retries took ~23 s
    assert error.value.code == BetterDepthError.MODEL_NOT_FOUND
    assert "unreachable" in error.value.message
    assert "betterdepth models download nobody-here/no-such-model" in error.value.hint


def test_hf_hub_offline_is_honoured_without_any_request(empty_hub_cache, blocked_network, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BetterDepthError) as error:
        loading.load_base_model("depth-anything-v2-small")
    assert "HF_HUB_OFFLINE" in error.value.message
    assert not any(args and "huggingface" in str(args[0]) for args in blocked_network)


class _NotFoundHub(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802  (the name http.server calls)
        self.send_response(404 if "no-such" in self.path else 200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_the_hub_check_tells_an_unknown_name_from_an_unreachable_hub(monkeypatch):
    server = http.server.HTTPServer(("127.0.0.1", 0), _NotFoundHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        assert hub_problem("someone/no-such-model") == "the hub has no model of that name"
        assert hub_problem("someone/a-model") is None
    finally:
        server.shutdown()
        thread.join()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")  # now closed
    assert "unreachable" in hub_problem("someone/a-model")


def test_models_lists_shipped_aliases_and_cached(empty_hub_cache, capsys):
    revision = "0" * 40
    repo = empty_hub_cache / "models--tiny-org--tiny-depth-anything"
    build_tiny_depth_anything(repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    assert cli.main(["models"]) == 0
    listing = capsys.readouterr().out
    assert str(loading.DEFAULT_WEIGHTS / "refiner") in listing and " MB" in listing
    assert "depth-anything-v2-small" in listing and "depth-anything/Depth-Anything-V2-Small-hf" in listing
    assert "not downloaded" in listing
    cached_line = next(line for line in listing.splitlines() if "tiny-org/tiny-depth-anything" in line)
    assert "cached" in cached_line and str(repo / "snapshots" / revision) in cached_line


def test_models_download_without_network_says_what_to_do(empty_hub_cache, blocked_network, capsys):
    start = time.perf_counter()
    assert cli.main(["models", "download", "dpt-large"]) == 2
    assert time.perf_counter() - start < 2
    error = capsys.readouterr().err
    assert "[MODEL_NOT_FOUND]" in error and "Intel/dpt-large" in error and "hint:" in error
