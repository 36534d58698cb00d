"""`betterdepth mesh` end to end on real files, through the real CLI entry point."""

import json

import numpy as np
import OpenEXR
import pytest
import trimesh
from PIL import Image

from betterdepth_engine import cli
from betterdepth_engine.commands.mesh import output_stem
from tests.recon.scenes import sphere_on_wall


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.jpg"
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    exif = image.getexif()
    exif.get_ifd(0x8769)[0xA405] = 28  # FocalLengthIn35mmFilm
    image.save(path, exif=exif)
    return path


def test_mesh_from_estimate_output_with_photo(tmp_path, photo):
    disparity = sphere_on_wall()
    disparity[:4, :4] = np.nan  # estimate writes NaN for invalid pixels
    np.save(tmp_path / "photo_disparity.npy", disparity)
    out = tmp_path / "out"
    argv = ["mesh", str(tmp_path / "photo_disparity.npy"), "--image", str(photo), "-o", str(out),
            "--format", "ply,glb", "--preview", "--heightmap"]
    assert cli.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "photo_height.exr", "photo_height.json", "photo_height.png", "photo_mesh.glb", "photo_mesh.json",
        "photo_mesh.ply", "photo_mesh_preview.png",
    ]
    sidecar = json.loads((out / "photo_mesh.json").read_text())
    assert sidecar["mesh"]["camera"]["source"] == "exif_35mm"
    assert sidecar["mesh"]["colors"] == "image"
    assert sidecar["mesh"]["input"]["image"] == str(photo)
    loaded = trimesh.load(out / "photo_mesh.ply", process=False)
    assert len(loaded.faces) == sidecar["counts"]["faces"]


def test_relief_from_a_16bit_png_depth(tmp_path):
    depth = (1000 + 500 * (1 - sphere_on_wall())).astype(np.uint16)  # millimetres, as depth sensors write
    Image.fromarray(depth).save(tmp_path / "scan_depth.png")
    out = tmp_path / "out"
    argv = ["mesh", str(tmp_path / "scan_depth.png"), "--space", "depth", "--mode", "relief", "-o", str(out),
            "--format", "glb", "--relief-method", "gamma", "--relief-depth", "5", "--fov-deg", "60"]
    assert cli.main(argv) == 0
    scene = trimesh.load(out / "scan_relief.glb")
    solid = next(iter(scene.geometry.values()))
    solid.merge_vertices(merge_tex=True, merge_norm=True)
    assert solid.is_watertight
    sidecar = json.loads((out / "scan_relief.json").read_text())
    assert sidecar["mesh"]["depth_range"]["source"] == "measured"
    assert sidecar["mesh"]["camera"]["source"] == "fov"


def test_decimated_obj_from_an_exr_disparity(tmp_path):
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {"Y": sphere_on_wall()}).write(str(tmp_path / "shot.exr"))
    out = tmp_path / "out"
    argv = ["mesh", str(tmp_path / "shot.exr"), "-o", str(out), "--format", "obj", "--max-faces", "1000",
            "--colors", "normal", "--far-near-ratio", "4", "--focal-px", "80"]
    assert cli.main(argv) == 0
    assert len(trimesh.load(out / "shot_mesh.obj", process=False).faces) <= 1000
    sidecar = json.loads((out / "shot_mesh.json").read_text())
    assert sidecar["mesh"]["depth_range"]["far"] == pytest.approx(4.0)


def test_errors_are_reported_without_traceback(tmp_path, photo, capsys):
    assert cli.main(["mesh", str(tmp_path / "missing.npy"), "-o", str(tmp_path / "out")]) == 2
    assert "[BAD_DEPTH]" in capsys.readouterr().err
    np.save(tmp_path / "small.npy", np.ones((10, 10), np.float32))
    assert cli.main(["mesh", str(tmp_path / "small.npy"), "--image", str(photo), "-o", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "[BAD_INPUT]" in error and "hint:" in error
    Image.new("RGB", (10, 10)).save(tmp_path / "colour.png")
    assert cli.main(["mesh", str(tmp_path / "colour.png"), "-o", str(tmp_path / "out")]) == 2
    assert "colour maps cannot be inverted" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert cli.main(["mesh", str(tmp_path / "small.npy"), "-o", str(tmp_path), "--focal-px", "5", "--fov-deg",
                     "50"]) == 2
    assert "Give one camera description" in capsys.readouterr().err


def test_output_stem_drops_the_estimate_suffix(tmp_path):
    assert output_stem(tmp_path / "photo_disparity.npy") == "photo"
    assert output_stem(tmp_path / "scan_depth.png") == "scan"
    assert output_stem(tmp_path / "_depth.exr") == "_depth"


def test_mesh_shows_its_slow_stages_and_checks_the_output_folder_first(tmp_path, capsys):
    np.save(tmp_path / "shot_disparity.npy", sphere_on_wall())
    argv = ["mesh", str(tmp_path / "shot_disparity.npy"), "--mode", "relief", "--max-faces", "500", "--heightmap"]
    assert cli.main([*argv, "-o", str(tmp_path / "out")]) == 0
    progress = capsys.readouterr().err
    assert all(f"mesh: {stage}" in progress for stage in ("relief", "decimate", "check solid", "height map"))
    (tmp_path / "a_file").write_text("")
    assert cli.main([*argv, "-o", str(tmp_path / "a_file" / "out")]) == 2
    assert "[OUTPUT_ERROR]" in capsys.readouterr().err


def test_a_relief_run_keeps_the_sidecar_of_an_earlier_mesh_run(tmp_path):
    np.save(tmp_path / "shot_disparity.npy", sphere_on_wall())
    depth_file = str(tmp_path / "shot_disparity.npy")
    assert cli.main(["mesh", depth_file, "-o", str(tmp_path / "out"), "-q"]) == 0
    mesh_sidecar = (tmp_path / "out" / "shot_mesh.json").read_text()
    assert cli.main(["mesh", depth_file, "-o", str(tmp_path / "out"), "--mode", "relief", "-q"]) == 0
    assert (tmp_path / "out" / "shot_mesh.json").read_text() == mesh_sidecar
    assert json.loads((tmp_path / "out" / "shot_relief.json").read_text())["files"] == {"ply": "shot_relief.ply"}


def test_mesh_options_are_the_reconstruction_settings_and_their_defaults(tmp_path):
    import argparse
    import dataclasses

    from betterdepth_engine.commands import mesh
    from betterdepth_engine.recon import ReconOptions, ReliefOptions

    parser = argparse.ArgumentParser()
    mesh.add_parser(parser.add_subparsers())
    args = parser.parse_args(["mesh", "depth.npy", "-o", str(tmp_path)])
    assert mesh.options_from_args(args, focal_35mm=None) == ReconOptions()
    changed = parser.parse_args(["mesh", "depth.npy", "-o", str(tmp_path), "--relief-gamma", "0.7", "--smooth", "2",
                                 "--colors", "normal", "--max-faces", "900"])
    assert mesh.options_from_args(changed, focal_35mm=28.0) == ReconOptions(
        focal_35mm=28.0, smooth_iterations=2, colors="normal", max_faces=900, relief=ReliefOptions(gamma=0.7))
    documented = [f for f in dataclasses.fields(ReconOptions) if f.metadata.get("cli", True)]
    assert all(f.metadata["help"] for f in documented + list(dataclasses.fields(ReliefOptions)))
