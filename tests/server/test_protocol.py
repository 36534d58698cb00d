"""Protocol v1 against a real engine over real HTTP: auth, every reachable error code, paths, uploads, results."""

from __future__ import annotations

import io
import json
import os
import socket
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from betterdepth_engine.client import EngineError
from tests.server.conftest import SLOW, npy_bytes


def raw(engine, method: str, path: str, token: str | None = "engine", body: bytes | None = None, headers=None):
    """(status, JSON answer) of a request made without the client library."""
    request = urllib.request.Request(f"{engine.url}{path}", data=body, method=method, headers=headers or {})
    if token is not None:
        request.add_header("Authorization", f"Bearer {engine.token if token == 'engine' else token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789abcdef"])
@pytest.mark.parametrize("path", ["/v1/health", "/v1/jobs", "/v1/openapi.json", "/v1/no-such-route", "/"])
def test_requests_without_the_right_token_get_401_and_nothing_else(engine, token, path):
    status, answer = raw(engine, "GET", path, token=token)
    assert status == 401
    assert answer["code"] == "UNAUTHORIZED" and "Bearer" in answer["hint"]


def test_a_job_without_the_token_is_not_accepted(engine, images_dir):
    body = json.dumps({"task": "estimate", "image": {"path": str(images_dir / "crop00.png")}}).encode()
    before = len(engine.client().jobs())
    status, answer = raw(engine, "POST", "/v1/jobs", token=None, body=body, headers={"Content-Type": "application/json"})
    assert (status, answer["code"]) == (401, "UNAUTHORIZED")
    assert len(engine.client().jobs()) == before


def test_health_reports_versions_device_memory_and_queue(client):
    health = client.health()
    assert health["protocol"] == "1" and health["engine_version"] and health["device"] == "cpu"
    assert health["memory"]["rss_bytes"] > 50 * 2**20
    assert health["queue_length"] >= 0 and "loaded_models" in health


def test_estimate_job_reports_real_progress_and_its_results(client, images_dir):
    job = client.submit("estimate", image_path=images_dir / "crop01.png",
                        estimate={"steps": 3, "seed": 7, "noise": "random"})
    seen = []
    final = client.wait(job["job_id"], on_progress=seen.append)
    stages = [status["stage"] for status in seen]
    assert stages.index("loading") < stages.index("base") < stages.index("refine") < stages.index("write")
    refine_steps = [status["step"] for status in seen if status["stage"] == "refine" and status["total_steps"]]
    assert refine_steps == [1, 2, 3]  # every change is an event, in order
    assert all(status["total_steps"] == 3 for status in seen if status["total_steps"])
    fractions = [status["fraction"] for status in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert final["state"] == "succeeded" and final["error"] is None
    assert set(final["results"]) == {"disparity.npy", "base_disparity.npy", "meta.json", "preview.png"}
    disparity = np.load(io.BytesIO(client.result_bytes(job["job_id"], "disparity.npy")), allow_pickle=False)
    assert disparity.shape == (64, 96) and disparity.dtype == np.float32
    meta = json.loads(client.result_bytes(job["job_id"], "meta.json"))
    assert meta["estimate"]["denoising_steps"] == 3 and meta["estimate"]["seed"] == 7
    assert meta["estimate"]["noise"] == "random"
    assert meta["image"]["width"] == 96 and meta["image"]["exif_orientation"] == 1
    from betterdepth_engine.server.models import folder_fingerprint  # provenance: which weights ran
    from betterdepth_engine.models.loading import DEFAULT_WEIGHTS

    files = meta["estimate"]["model_files"]
    assert files["refiner"]["sha256"] == folder_fingerprint(DEFAULT_WEIGHTS / "refiner")
    assert files["base"]["folder"] == str(DEFAULT_WEIGHTS / "base") and len(files["base"]["sha256"]) == 64
    assert Image.open(io.BytesIO(client.result_bytes(job["job_id"], "preview.png"))).size[0] == 96


def test_mesh_job_sends_plain_arrays_with_the_blender_camera(client, images_dir, tmp_path):
    camera = {"lens_mm": 35.0, "sensor_width_mm": 32.0, "sensor_fit": "VERTICAL", "shift_x": 0.1,
              "pixel_aspect_x": 1.0, "pixel_aspect_y": 1.2}
    job = client.submit("mesh", image_path=images_dir / "crop02.png",
                        mesh={"blender_camera": camera, "formats": ["ply", "glb", "ply-points"], "preview": True})
    final = client.wait(job["job_id"])
    assert {"mesh.npz", "mesh.ply", "mesh.glb", "mesh_points.ply", "mesh_preview.png"} <= set(final["results"])
    mesh = np.load(client.download(job["job_id"], "mesh.npz", tmp_path / "mesh.npz"), allow_pickle=False)
    assert mesh["vertices"].dtype == np.float32 and mesh["triangles"].dtype == np.int32
    assert mesh["colors"].dtype == np.uint8 and mesh["uvs"].shape == (len(mesh["vertices"]), 2)
    assert mesh["normals"].shape == mesh["vertices"].shape and mesh["triangles"].max() < len(mesh["vertices"])
    meta = json.loads(client.result_bytes(job["job_id"], "meta.json"))
    used = meta["mesh"]["camera"]
    assert used["source"] == "blender_camera" and used["fx"] != used["fy"]  # pixel aspect honoured
    assert used["cx"] < (96 - 1) / 2  # shift honoured
    assert not list(tmp_path.glob(".*partial"))


def test_relief_job_writes_height_maps_with_displace_settings(client, images_dir):
    job = client.submit("relief", image_path=images_dir / "crop03.png", relief={"depth": 5.0, "width": 50.0})
    final = client.wait(job["job_id"])
    assert {"height.exr", "height.png", "mesh.npz"} <= set(final["results"])
    displace = json.loads(client.result_bytes(job["job_id"], "meta.json"))["height_map"]["blender_displace"]
    assert displace["strength"] == 5.0 and displace["midlevel"] == 0.0 and displace["plane_width"] == 50.0
    height = np.asarray(Image.open(io.BytesIO(client.result_bytes(job["job_id"], "height.png"))))
    assert height.dtype == np.uint16 and height.shape == (64, 96)


def test_remeshing_reuses_the_depth_without_running_the_models(engine, client, images_dir):
    first = client.submit("estimate", image_path=images_dir / "crop04.png")
    client.wait(first["job_id"])
    again = client.submit("mesh", reuse_job=first["job_id"], mesh={"min_angle_deg": 8.0})
    final = client.wait(again["job_id"])
    meta = json.loads(client.result_bytes(again["job_id"], "meta.json"))
    assert meta["reused_from"] == first["job_id"] and "base" not in meta["timings_s"]
    assert meta["recon_options"]["min_angle_deg"] == 8.0
    assert client.result_bytes(again["job_id"], "disparity.npy") == client.result_bytes(first["job_id"], "disparity.npy")
    log = (engine.state_dir / "engine.log").read_text()
    assert f"job {first['job_id']}: base" in log and f"job {again['job_id']}: reconstruct" in log
    assert f"job {again['job_id']}: base" not in log and f"job {again['job_id']}: refine" not in log
    assert "mesh.npz" in final["results"]


def test_a_kept_disparity_is_meshed_without_the_models_or_the_image(engine, client, images_dir):
    """reuse_disparity: a disparity the client kept (e.g. in a .blend) after the engine dropped the job."""
    first = client.submit("mesh", image_path=images_dir / "crop07.png")
    client.wait(first["job_id"])
    kept = client.result_bytes(first["job_id"], "disparity.npy")
    client.delete(first["job_id"])  # the engine forgot it (retention, restart, another machine)
    upload = client.upload(kept, "disparity.npy")
    again = client.submit("mesh", reuse_disparity=upload["upload_id"], mesh={"min_angle_deg": 8.0})
    client.wait(again["job_id"])
    meta = json.loads(client.result_bytes(again["job_id"], "meta.json"))
    assert meta["estimate"]["reused_disparity"] == {"upload_id": upload["upload_id"], "width": 96, "height": 64}
    assert meta["image"] == {"path": None} and meta["recon_options"]["min_angle_deg"] == 8.0
    assert np.array_equal(np.load(io.BytesIO(client.result_bytes(again["job_id"], "disparity.npy"))),
                          np.load(io.BytesIO(kept)), equal_nan=True)
    log = (engine.state_dir / "engine.log").read_text()
    assert f"job {again['job_id']}: reconstruct" in log
    assert not any(f"job {again['job_id']}: {stage}" in log for stage in ("loading", "base", "refine"))
    # With the image too (colours, EXIF), the sizes must agree.
    relief = client.submit("relief", image_path=images_dir / "crop07.png", reuse_disparity=upload["upload_id"])
    assert "height.exr" in client.wait(relief["job_id"])["results"]
    wrong = client.upload(npy_bytes(np.ones((10, 12), np.float32)), "disparity.npy")
    mismatch = client.submit("mesh", image_path=images_dir / "crop07.png", reuse_disparity=wrong["upload_id"])
    with pytest.raises(EngineError) as caught:
        client.wait(mismatch["job_id"])
    assert caught.value.code == "BASE_FILE_MISMATCH" and "12x10" in caught.value.message


def test_a_damaged_kept_disparity_is_refused_at_submission(client, images_dir):
    damaged = client.upload(b"\x93NUMPY not really", "disparity.npy")
    assert _code(lambda: client.submit("mesh", reuse_disparity=damaged["upload_id"])) == "BAD_DEPTH"
    empty = client.upload(npy_bytes(np.full((8, 8), np.nan, np.float32)), "disparity.npy")
    assert _code(lambda: client.submit("mesh", reuse_disparity=empty["upload_id"])) == "BAD_DEPTH"
    good = client.upload(npy_bytes(np.ones((8, 8), np.float32)), "disparity.npy")
    assert _code(lambda: client.submit("estimate", reuse_disparity=good["upload_id"])) == "BAD_PARAMS"
    assert _code(lambda: client.submit("mesh", reuse_disparity=good["upload_id"], reuse_job="0" * 32)) == "BAD_PARAMS"


def test_an_idempotency_key_makes_a_retried_submission_return_the_same_job(client, images_dir):
    key = f"retry-{time.time()}"
    first = client.submit("estimate", image_path=images_dir / "crop05.png", idempotency_key=key)
    second = client.submit("estimate", image_path=images_dir / "crop05.png", idempotency_key=key)
    assert second["job_id"] == first["job_id"] and second["existing"] and not first["existing"]
    client.wait(first["job_id"])
    assert sum(job["job_id"] == first["job_id"] for job in client.jobs()) == 1


def test_uploads_are_accepted_and_a_base_prediction_upload_replaces_the_base_model(engine, client, images_dir):
    image_bytes = (images_dir / "crop06.png").read_bytes()
    disparity = np.tile(np.linspace(1, 2, 96, dtype=np.float32), (64, 1))
    base_upload = client.upload(npy_bytes(disparity), "prediction.npy")
    assert base_upload["size"] > 0 and len(base_upload["sha256"]) == 64
    request = {"task": "estimate", "image": {"upload_id": client.upload(image_bytes, "x.png")["upload_id"]},
               "estimate": {"refiner": "none", "base_prediction": {"upload_id": base_upload["upload_id"]}}}
    job = client._json("POST", "/jobs", request)
    client.wait(job["job_id"])
    base = np.load(io.BytesIO(client.result_bytes(job["job_id"], "base_disparity.npy")))
    assert np.array_equal(base, disparity)
    log = (engine.state_dir / "engine.log").read_text()
    assert f"job {job['job_id']}: base" in log and f"job {job['job_id']}: refine" not in log  # no refiner ran


# Every error code a request can produce, produced by a real request ----------------------------------------

def _code(call) -> str:
    with pytest.raises(EngineError) as caught:
        call()
    return caught.value.code


def test_bad_params_not_found_and_method_not_allowed(engine, client, images_dir):
    image = str(images_dir / "crop00.png")
    assert _code(lambda: client.submit("paint", image_path=image)) == "BAD_PARAMS"
    assert _code(lambda: client.submit("estimate", image_path=image, estimate={"stepz": 3})) == "BAD_PARAMS"
    assert _code(lambda: client.submit("estimate", image_path=image, estimate={"steps": 0})) == "BAD_PARAMS"
    assert _code(lambda: client.submit("mesh", image_path=image, mesh={"min_angle_deg": 95})) == "BAD_PARAMS"
    assert _code(lambda: client.submit("mesh", image_path=image,
                                       mesh={"blender_camera": {"sensor_fit": "DIAGONAL"}})) == "BAD_PARAMS"
    assert _code(lambda: client.submit("estimate")) == "BAD_PARAMS"  # no image
    status, answer = raw(engine, "POST", "/v1/jobs", body=b"{not json", headers={"Content-Type": "application/json"})
    assert (status, answer["code"]) == (422, "BAD_PARAMS")
    assert _code(lambda: client.status("0" * 32)) == "NOT_FOUND"
    assert _code(lambda: client.result_bytes("0" * 32, "disparity.npy")) == "NOT_FOUND"
    assert _code(lambda: client.submit("mesh", reuse_job="0" * 32)) == "NOT_FOUND"
    assert _code(lambda: client._json("POST", "/jobs", {"task": "estimate", "image": {"upload_id": "f" * 32}})) == "NOT_FOUND"
    status, answer = raw(engine, "DELETE", "/v1/health")
    assert (status, answer["code"]) == (405, "METHOD_NOT_ALLOWED")


def test_result_names_cannot_reach_outside_the_job(client, images_dir):
    job = client.submit("estimate", image_path=images_dir / "crop07.png")
    client.wait(job["job_id"])
    for name in ("..%2F..%2Fjobs.sqlite3", "..%2Finput%2Fimage.png", "token", "%2Fetc%2Fpasswd"):
        assert _code(lambda name=name: client.result_bytes(job["job_id"], name)) == "NOT_FOUND"


def test_paths_outside_the_allowed_folders_are_refused(client, images_dir, tmp_path):
    outside = tmp_path / "outside.png"
    Image.open(images_dir / "crop00.png").save(outside)
    escaping_link = images_dir / "escape.png"
    escaping_link.unlink(missing_ok=True)
    escaping_link.symlink_to(outside)
    for path in (str(outside), str(escaping_link), f"{images_dir}/../{outside.parent.name}/outside.png",
                 "crop00.png", "/etc/passwd"):
        with pytest.raises(EngineError) as caught:
            client._json("POST", "/jobs", {"task": "estimate", "image": {"path": path}})
        assert caught.value.code == "PATH_NOT_ALLOWED", path
        assert "--allow-dir" in caught.value.hint
    inside_link = images_dir / "inside.png"
    inside_link.unlink(missing_ok=True)
    inside_link.symlink_to(images_dir / "crop00.png")
    client.wait(client.submit("estimate", image_path=inside_link)["job_id"])  # a link within the folder is fine


def test_bad_images_are_refused_at_submission(client, images_dir, tmp_path):
    assert _code(lambda: client.submit("estimate", image_path=images_dir / "not_an_image.png")) == "BAD_IMAGE"
    assert _code(lambda: client.submit("estimate", image_bytes=b"GIF89a not really", filename="x.png")) == "BAD_IMAGE"
    assert _code(lambda: client.upload(b"", "empty.png")) == "BAD_IMAGE"
    huge = io.BytesIO()
    Image.new("L", (17000, 8)).save(huge, format="PNG")
    assert _code(lambda: client.submit("estimate", image_bytes=huge.getvalue(), filename="wide.png")) == "BAD_IMAGE"
    assert _code(lambda: client.upload(b"x", "notes.txt")) == "BAD_PARAMS"


def test_job_failures_carry_the_engine_codes(client, images_dir):
    image = images_dir / "crop08.png"
    failures = {
        "MODEL_NOT_FOUND": {"base": "no-such-org/no-such-depth-model"},
        "BAD_DEPTH": {"refiner": "none", "base_prediction": {
            "upload_id": client.upload(npy_bytes(np.full((64, 96), np.nan, np.float32)), "nan.npy")["upload_id"]}},
        "BASE_FILE_MISMATCH": {"refiner": "none", "base_prediction": {
            "upload_id": client.upload(npy_bytes(np.ones((10, 10), np.float32)), "small.npy")["upload_id"]}},
    }
    for code, estimate in failures.items():
        request = {"task": "estimate", "image": {"path": str(image)}, "estimate": estimate}
        job = client._json("POST", "/jobs", request)
        with pytest.raises(EngineError) as caught:
            client.wait(job["job_id"])
        assert caught.value.code == code and caught.value.hint
        status = client.status(job["job_id"])
        assert status["state"] == "failed" and status["error"]["code"] == code and status["results"] == []
    assert client.health()["protocol"] == "1"  # the engine keeps serving


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(engine, client):
    import http.client

    uploads = engine.state_dir / "uploads"
    before = set(os.listdir(uploads))
    assert _code(lambda: client.upload(b"\0" * (6 * 2**20), "big.png")) == "PAYLOAD_TOO_LARGE"  # checked by the client
    host, port = engine.url.removeprefix("http://").split(":")
    headers = {"X-Filename": "big.png", "Authorization": f"Bearer {engine.token}"}
    # A declared length over the limit is answered before the body is read ...
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/v1/uploads")
    for name, value in {**headers, "Content-Length": str(6 * 2**20)}.items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["code"] == "PAYLOAD_TOO_LARGE"
    connection.close()
    # ... and a body without a length (chunked) is counted and cut at the limit.
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", "/v1/uploads", body=iter([b"\0" * 2**20] * 6), headers=headers, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["code"] == "PAYLOAD_TOO_LARGE"
    connection.close()
    assert set(os.listdir(uploads)) == before
    status, answer = raw(engine, "POST", "/v1/jobs", body=b" " * (2**20 + 100), headers={"Content-Type": "application/json"})
    assert (status, answer["code"]) == (413, "PAYLOAD_TOO_LARGE")


def test_a_client_that_disconnects_mid_upload_leaves_the_server_unharmed(engine, client):
    uploads = engine.state_dir / "uploads"
    before = set(os.listdir(uploads))
    host, port = engine.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            f"POST /v1/uploads HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {engine.token}\r\n"
            f"X-Filename: photo.png\r\nContent-Length: {2**20}\r\n\r\n".encode() + b"\x89PNG" + b"\0" * 5000)
        time.sleep(0.3)
    time.sleep(0.5)
    assert client.health()["protocol"] == "1"
    assert set(os.listdir(uploads)) == before  # no partial upload left behind


def test_preview_is_available_while_the_job_runs(client, images_dir):
    job = client.submit("estimate", image_path=images_dir / "crop09.png", estimate=SLOW)
    try:
        for status in client.events(job["job_id"]):
            if status["stage"] == "refine" and (status["step"] or 0) >= 2:
                assert status["state"] == "running" and status["results"] == ["preview.png"]
                preview = Image.open(io.BytesIO(client.result_bytes(job["job_id"], "preview.png")))
                assert preview.size == (96, 64) and preview.mode == "RGB"
                assert status["eta_s"] is not None and status["eta_s"] > 0
                break
    finally:
        client.cancel(job["job_id"])


def test_the_checked_in_openapi_schema_is_the_served_one(engine):
    from pathlib import Path

    status, served = raw(engine, "GET", "/v1/openapi.json")
    assert status == 200
    checked_in = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
    assert served == checked_in, "regenerate it: python scripts/export_openapi.py"


def test_a_reuse_whose_source_is_deleted_before_it_runs_fails_clearly(client, images_dir):
    source = client.submit("estimate", image_path=images_dir / "crop10.png")
    client.wait(source["job_id"])
    blocker = client.submit("estimate", image_path=images_dir / "crop11.png", estimate=SLOW)
    remesh = client.submit("mesh", reuse_job=source["job_id"])  # queued behind the blocker
    client.delete(source["job_id"])
    client.cancel(blocker["job_id"])
    with pytest.raises(EngineError) as caught:
        client.wait(remesh["job_id"])
    assert caught.value.code == "NOT_FOUND" and "deleted" in caught.value.message
