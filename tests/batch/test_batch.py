"""`betterdepth batch` on a real local Ray runtime (one per test session) with the shipped models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from betterdepth_engine.batch import CRASH_ONCE_ENV
from betterdepth_engine.cli import main

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
FAST = ["--processing-resolution", "64", "-q"]


@pytest.fixture(scope="session")
def ray_runtime():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture
def shots(tmp_path) -> Path:
    """Six small photos, two of them in a subfolder (folders are read recursively)."""
    folder = tmp_path / "shots"
    (folder / "day2").mkdir(parents=True)
    photo = Image.open(SAMPLES / "coffee.jpg").convert("RGB")
    for index in range(6):
        target = folder / ("day2" if index >= 4 else "") / f"shot{index}.png"
        photo.crop((index * 40, index * 20, index * 40 + 96, index * 20 + 64)).save(target)
    return folder


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "_batch" / "manifest.jsonl").read_text().splitlines()]


def outputs(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out.glob("*.*"))}


def without_timings(meta: bytes) -> dict:
    document = json.loads(meta)
    document.pop("timings_s")
    return document


def test_batch_on_ray_writes_what_estimate_writes(ray_runtime, shots, tmp_path):
    args = ["--seed", "3", "--formats", "png16", "--mesh", "ply", *FAST]
    # One worker gets both CPUs, so torch runs with the thread count of this process (conftest): float sums are
    # then taken in the same order and the files are equal to the byte.
    assert main(["batch", str(shots), "-o", str(tmp_path / "ray"), "--workers", "1", *args]) == 0
    images = sorted(shots.rglob("*.png"))
    assert main(["estimate", *map(str, images), "-o", str(tmp_path / "estimate"), *args]) == 0
    served, expected = outputs(tmp_path / "ray"), outputs(tmp_path / "estimate")
    assert served.keys() == expected.keys() and len(served) == 6 * 6
    for name in served:
        if name.endswith("_meta.json"):  # timings differ run to run; everything else is equal
            assert without_timings(served[name]) == without_timings(expected[name])
        elif not name.endswith("_mesh.json"):
            assert served[name] == expected[name], name
    rows = manifest(tmp_path / "ray")
    assert sorted(row["path"] for row in rows) == [str(path) for path in images]
    assert {row["status"] for row in rows} == {"ok"} and all(row["seconds"] > 0 and row["worker"] for row in rows)


def test_a_broken_image_is_recorded_and_the_others_finish(ray_runtime, shots, tmp_path, capsys):
    (shots / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    out = tmp_path / "out"
    assert main(["batch", str(shots), "-o", str(out), *FAST]) == 2
    rows = {Path(row["path"]).name: row for row in manifest(out)}
    assert rows["broken.jpg"]["status"] == "failed" and rows["broken.jpg"]["code"] == "BAD_IMAGE"
    assert sum(row["status"] == "ok" for row in rows.values()) == 6
    assert len(list(out.glob("shot*_meta.json"))) == 6 and not list(out.glob("broken*"))
    assert "1 failed" in capsys.readouterr().err


def test_a_rerun_redoes_exactly_the_missing_outputs(ray_runtime, shots, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["batch", str(shots), "-o", str(out), *FAST]) == 0
    (out / "shot1_disparity.npy").unlink()
    (out / "shot5_meta.json").unlink()
    assert main(["batch", str(shots), "-o", str(out), *FAST]) == 0
    assert sorted(Path(row["path"]).name for row in manifest(out)) == ["shot1.png", "shot5.png"]
    assert "2 done, 0 failed, 4 skipped" in capsys.readouterr().err
    assert len(list((out / "_batch").glob("manifest-*.jsonl"))) == 1  # the first run's manifest is kept


def test_a_worker_that_dies_is_replaced_and_every_image_is_done_once(ray_runtime, shots, tmp_path, monkeypatch):
    monkeypatch.setenv(CRASH_ONCE_ENV, "shot2.png")
    out = tmp_path / "out"
    assert main(["batch", str(shots), "-o", str(out), "--workers", "2", *FAST]) == 0
    assert (out / "_batch" / ".crashed-shot2.png").exists()  # the worker really died
    rows = manifest(out)
    assert sorted(Path(row["path"]).name for row in rows) == [f"shot{index}.png" for index in range(6)]
    assert {row["status"] for row in rows} == {"ok"}
    assert len(list(out.glob("shot*_meta.json"))) == 6


def test_the_plain_loop_and_a_path_list_give_the_same_files(shots, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("# two shots\nshots/shot0.png\n\nshots/day2/shot4.png\n")
    assert main(["batch", str(listing), "-o", str(tmp_path / "loop"), "--workers", "0", *FAST]) == 0
    assert main(["estimate", str(shots / "shot0.png"), str(shots / "day2" / "shot4.png"), "-o",
                 str(tmp_path / "estimate"), *FAST]) == 0
    loop, expected = outputs(tmp_path / "loop"), outputs(tmp_path / "estimate")
    assert loop.keys() == expected.keys()
    assert all(loop[name] == expected[name] for name in loop if name.endswith(".npy"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ray-address", "127.0.0.1:1"], "Cannot reach a Ray cluster at '127.0.0.1:1'"),
        (["--ray-address", "ray://127.0.0.1:1"], "Cannot reach a Ray cluster"),
        (["--workers", "-1"], "--workers must be 0 or more"),
    ],
)
def test_bad_arguments_give_clear_errors_and_write_nothing(shots, tmp_path, extra, message):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "betterdepth_engine", "batch", str(shots), "-o", str(out), *extra],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
