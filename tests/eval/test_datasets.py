"""Dataset loaders on small fixture files written in each benchmark's layout (folders and Marigold-style tars)."""

import dataclasses
import io
import math
import tarfile

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from betterdepth_engine.errors import BetterDepthError
from betterdepth_engine.eval import datasets
from betterdepth_engine.eval.runner import score_prediction


def png_bytes(array: np.ndarray, format="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=format)
    return buffer.getvalue()


def rgb(height, width, seed=0, format="PNG") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return png_bytes(pixels, format)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def depth_ramp(height, width, near=1.0, far=5.0) -> np.ndarray:
    return np.linspace(near, far, height * width).reshape(height, width)


def write_folder(root, files: dict[str, bytes]):
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def write_tar(path, files: dict[str, bytes]):
    """A tar named like Marigold's: members "./relative/path"."""
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(params=["folder", "tar"])
def store(request, tmp_path):
    """Writes files as a folder or as a tar; returns the dataset root."""
    def write(files):
        if request.param == "folder":
            return write_folder(tmp_path / "data", files)
        return write_tar(tmp_path / "data.tar", files)
    return write


def test_nyu_reads_millimetres_applies_the_eigen_crop_and_skips_train(store):
    depth_mm = (depth_ramp(480, 640) * 1000).astype(np.uint16)
    depth_mm[100, 100] = 0  # no measurement
    root = store({
        "test/kitchen_0004/rgb_0001.png": rgb(480, 640),
        "test/kitchen_0004/depth_0001.png": png_bytes(depth_mm),
        "test/kitchen_0004/filled_0001.png": png_bytes(depth_mm),
        "train/bedroom_0001/rgb_0002.png": rgb(480, 640),
        "train/bedroom_0001/depth_0002.png": png_bytes(depth_mm),
    })
    dataset = datasets.open_benchmark("nyu", root)
    assert len(dataset) == 1 and dataset.protocol.max_depth_m == 10.0
    sample = dataset[0]
    assert sample.name == "test/kitchen_0004/rgb_0001.png" and sample.rgb.shape == (480, 640, 3)
    assert sample.depth_m.dtype == np.float32
    np.testing.assert_allclose(sample.depth_m[200, 300], depth_mm[200, 300] / 1000.0, rtol=1e-6)
    assert not sample.valid_mask[100, 100] and sample.depth_m[100, 100] == 0
    assert not sample.valid_mask[44, 300] and sample.valid_mask[45, 300]  # Eigen crop rows 45..470
    assert not sample.valid_mask[300, 40] and sample.valid_mask[300, 41] and not sample.valid_mask[300, 601]


def kitti_files():
    depth = np.zeros((375, 1242), np.uint16)
    depth[200:370:3, 10:1230:4] = 20 * 256  # sparse LiDAR points at 20 m
    depth[360, 620] = 100 * 256  # beyond 80 m: invalid
    return {
        "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png": rgb(375, 1242),
        "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png": png_bytes(depth),
        "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000070.png": rgb(375, 1242),  # no ground truth
    }


def test_kitti_decodes_over_256_crops_to_the_benchmark_and_keeps_the_eigen_region(store):
    dataset = datasets.open_benchmark("kitti", store(kitti_files()))
    assert len(dataset) == 1 and not dataset.protocol.dense_ground_truth
    sample = dataset[0]
    assert sample.rgb.shape == (352, 1216, 3) and sample.depth_m.shape == (352, 1216)
    assert set(np.unique(sample.depth_m[sample.valid_mask])) == {20.0}
    # The crop takes the bottom 352 rows (23 of 375 dropped) and 13 columns from each side.
    assert not sample.valid_mask[200 - 23, 14 - 13]  # left of the Eigen region (3.6% of the width)
    assert sample.valid_mask[203 - 23, 102 - 13]
    assert not sample.valid_mask[360 - 23, 620 - 13]
    region = datasets.kitti_eigen_region((352, 1216))
    assert not (sample.valid_mask & ~region).any()


def test_kitti_split_file_lists_samples_and_skips_lines_without_ground_truth(store, tmp_path):
    split = tmp_path / "eigen_test_files_with_gt.txt"
    split.write_text(
        "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png "
        "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png 721.5377\n"
        "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000070.png None 721.5377\n")
    dataset = datasets.open_benchmark("kitti", store(kitti_files()), split_file=split)
    assert len(dataset) == 1 and dataset[0].depth_m.shape == (352, 1216)


def test_split_file_naming_a_missing_file_fails_clearly(store, tmp_path):
    split = tmp_path / "split.txt"
    split.write_text("test/a/rgb_0001.png test/a/depth_0001.png\n")
    dataset = datasets.open_benchmark("nyu", store({"test/x/rgb_0002.png": rgb(4, 4)}), split_file=split)
    with pytest.raises(BetterDepthError, match="not in the dataset"):
        dataset[0]


def test_eth3d_reads_raw_float32_at_the_image_size_with_inf_invalid(store):
    depth = depth_ramp(6, 9).astype("<f4")
    depth[0, 0] = np.inf
    root = store({
        "rgb/office/images/dslr_images/DSC_0219.JPG": rgb(6, 9, format="JPEG"),
        "depth/office_dslr_depth/office/ground_truth_depth/dslr_images/DSC_0219.JPG": depth.tobytes(),
    })
    dataset = datasets.open_benchmark("eth3d", root)
    assert dataset.protocol.processing_resolution == 756 and dataset.protocol.alignment_max_resolution == 1024
    sample = dataset[0]
    np.testing.assert_allclose(sample.depth_m[1:], depth[1:])
    assert not sample.valid_mask[0, 0] and sample.valid_mask[1:].all()


def test_eth3d_depth_of_the_wrong_size_is_a_clear_error(store):
    root = store({
        "rgb/office/images/dslr_images/DSC_0219.JPG": rgb(6, 9, format="JPEG"),
        "depth/office_dslr_depth/office/ground_truth_depth/dslr_images/DSC_0219.JPG": b"\0" * 40,
    })
    with pytest.raises(BetterDepthError, match="10 values, not 6 x 9"):
        datasets.open_benchmark("eth3d", root)[0]


def test_scannet_pairs_colour_jpg_with_millimetre_png(store):
    depth_mm = (depth_ramp(12, 16) * 1000).astype(np.uint16)
    root = store({"scene0406_02/color/000300.jpg": rgb(12, 16, format="JPEG"),
                  "scene0406_02/depth/000300.png": png_bytes(depth_mm)})
    sample = datasets.open_benchmark("scannet", root)[0]
    np.testing.assert_allclose(sample.depth_m, depth_mm / 1000.0, rtol=1e-6)


def test_diode_combines_the_range_with_the_scanner_mask(store):
    depth = depth_ramp(8, 10, near=0.3, far=20.0)[..., None].astype(np.float32)  # (H, W, 1) as DIODE ships it
    mask = np.ones((8, 10), np.float32)
    mask[7, 9] = 0
    stem = "indoors/scene_00021/scan_00189/00021_00189_indoors_200_010"
    root = store({f"{stem}.png": rgb(8, 10), f"{stem}_depth.npy": npy_bytes(depth),
                  f"{stem}_depth_mask.npy": npy_bytes(mask)})
    sample = datasets.open_benchmark("diode", root)[0]
    assert sample.depth_m.shape == (8, 10)
    expected = (depth[..., 0] > 0.6) & (mask > 0)
    np.testing.assert_array_equal(sample.valid_mask, expected)


def pfm_bytes(values: np.ndarray) -> bytes:
    """A little-endian grayscale PFM: bottom row first."""
    height, width = values.shape
    return f"Pf\n{width} {height}\n-1.0\n".encode() + np.flipud(values).astype("<f4").tobytes()


def test_middlebury_converts_disparity_to_metres_with_the_calibration(store):
    disparity = np.full((4, 6), 100.0)
    disparity[0, :] = 200.0  # the top row is nearer; checks that PFM rows are flipped
    disparity[3, 5] = np.inf  # unknown
    calibration = ("cam0=[4000 0 1000; 0 4000 700; 0 0 1]\ncam1=[4000 0 1100; 0 4000 700; 0 0 1]\n"
                   "doffs=100\nbaseline=200\nwidth=6\nheight=4\nndisp=280\n")
    root = store({"Adirondack-perfect/im0.png": rgb(4, 6), "Adirondack-perfect/disp0.pfm": pfm_bytes(disparity),
                  "Adirondack-perfect/calib.txt": calibration.encode()})
    sample = datasets.open_benchmark("middlebury", root)[0]
    assert sample.depth_m[1, 0] == pytest.approx(200 * 4000 / (100 + 100) / 1000)  # 4 m
    assert sample.depth_m[0, 0] == pytest.approx(200 * 4000 / (200 + 100) / 1000)
    assert not sample.valid_mask[3, 5]


def test_hypersim_reads_planar_depth_in_millimetres(store):
    depth_mm = (depth_ramp(6, 8) * 1000).astype(np.uint16)
    root = store({"ai_001_001/rgb_cam_00_fr0000.png": rgb(6, 8),
                  "ai_001_001/depth_plane_cam_00_fr0000.png": png_bytes(depth_mm)})
    dataset = datasets.open_benchmark("hypersim", root)
    assert dataset.protocol.max_depth_m == 65.0
    np.testing.assert_allclose(dataset[0].depth_m, depth_mm / 1000.0, rtol=1e-6)


def test_vkitti_reads_centimetres_with_the_kb_crop(store):
    depth_cm = np.full((375, 1242), 1500, np.uint16)
    depth_cm[0, 0] = 65535  # sky: 655.35 m, beyond the 80 m range
    root = store({"rgb/Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg": rgb(375, 1242, format="JPEG"),
                  "depth/Scene01/clone/frames/depth/Camera_0/depth_00000.png": png_bytes(depth_cm)})
    sample = datasets.open_benchmark("vkitti", root)[0]
    assert sample.depth_m.shape == (352, 1216) and sample.valid_mask.all()
    np.testing.assert_allclose(sample.depth_m, 15.0)


def test_unknown_benchmark_and_missing_or_empty_roots_fail_clearly(tmp_path):
    with pytest.raises(BetterDepthError, match="Unknown dataset 'nyuv3'"):
        datasets.open_benchmark("nyuv3", tmp_path)
    with pytest.raises(BetterDepthError, match="does not exist"):
        datasets.open_benchmark("nyu", tmp_path / "missing")
    with pytest.raises(BetterDepthError, match="No nyu samples found"):
        datasets.open_benchmark("nyu", tmp_path)


def write_exr(path, values):
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"Z": values.astype(np.float32)}) as exr:
        exr.write(str(path))


def test_folder_dataset_reads_npy_png_millimetres_and_exr(tmp_path):
    depth = np.round(depth_ramp(5, 7), 3)  # whole millimetres, so that the PNG holds it exactly
    depth[0, 0] = 0.0  # invalid
    write_folder(tmp_path, {"images/a.png": rgb(5, 7), "images/b.jpg": rgb(5, 7, format="JPEG"),
                            "images/c.png": rgb(5, 7), "depth/a.npy": npy_bytes(depth.astype(np.float32)),
                            "depth/b.png": png_bytes((depth * 1000).astype(np.uint16))})
    write_exr(tmp_path / "depth" / "c.exr", depth)
    dataset = datasets.FolderDataset(tmp_path)
    assert len(dataset) == 3 and [dataset[i].name for i in range(3)] == ["a.png", "b.jpg", "c.png"]
    for index in range(3):
        sample = dataset[index]
        np.testing.assert_allclose(sample.depth_m, depth, rtol=1e-6)
        assert not sample.valid_mask[0, 0] and sample.valid_mask.sum() == 34


def test_folder_dataset_refuses_images_without_depth_and_8_bit_png(tmp_path):
    write_folder(tmp_path, {"images/a.png": rgb(5, 7), "depth/.keep": b""})
    with pytest.raises(BetterDepthError, match="have no depth file: a.png"):
        datasets.FolderDataset(tmp_path)
    write_folder(tmp_path, {"depth/a.png": png_bytes(np.zeros((5, 7), np.uint8))})
    with pytest.raises(BetterDepthError, match="8-bit PNG"):
        datasets.FolderDataset(tmp_path)[0]
    with pytest.raises(BetterDepthError, match="lacks an images/ or depth/"):
        datasets.FolderDataset(tmp_path / "depth")


def test_synthetic_dataset_yields_validation_scenes():
    dataset = datasets.SyntheticDataset(1, height=24, width=32)
    sample = dataset[0]
    assert len(dataset) == 1 and sample.name.startswith("val_00000_")
    assert sample.rgb.shape == (24, 32, 3) and sample.rgb.dtype == np.uint8
    assert sample.valid_mask.any() and (sample.depth_m[sample.valid_mask] > 0).all()
    assert (sample.depth_m[~sample.valid_mask] == 0).all()
    assert sample.depth_m.max() <= sample.max_depth_m < math.inf  # the scene's own range, for clipping
    with pytest.raises(IndexError):
        dataset[1]


def test_synthetic_dataset_can_start_at_a_later_scene():
    """`first` keeps scenes chosen on and scenes reported on apart: scene 2 is the same scene either way."""
    later = datasets.SyntheticDataset(1, height=24, width=32, first=2)[0]
    same = datasets.SyntheticDataset(3, height=24, width=32)[2]
    assert later.name == same.name and later.name.startswith("val_00002_")
    np.testing.assert_array_equal(later.rgb, same.rgb)
    np.testing.assert_array_equal(later.depth_m, same.depth_m)


def test_predictions_are_clipped_to_the_samples_own_depth_range():
    depth_m = np.full((8, 8), 5.0, np.float32)
    depth_m[:, 4:] = 20.0
    valid = np.ones_like(depth_m, dtype=bool)
    sample = datasets.DepthSample("a", np.zeros((8, 8, 3), np.uint8), depth_m, valid, max_depth_m=30.0)
    disparity = 1.0 / depth_m
    disparity[0, 7] = 1e-4  # one pixel predicted 200 times too far
    _, aligned_m = score_prediction(disparity, sample, datasets.EvalProtocol())
    assert aligned_m.max() == pytest.approx(30.0)
    unbounded = dataclasses.replace(sample, max_depth_m=math.inf)
    assert score_prediction(disparity, unbounded, datasets.EvalProtocol())[1].max() > 100.0
