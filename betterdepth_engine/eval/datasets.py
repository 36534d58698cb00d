"""Depth datasets with ground truth, read in the layouts Marigold's evaluation uses, plus users' own folders.

Every dataset is a sequence of `DepthSample`s (RGB uint8, depth in metres, valid mask, name) and carries the
`EvalProtocol` its benchmark prescribes (depth range, processing resolution, ...).

- `open_benchmark(name, root, split_file=None)`: NYUv2, KITTI, ETH3D, ScanNet, DIODE, Middlebury 2014,
  Hypersim, Virtual KITTI. `root` is the dataset's folder or the .tar Marigold distributes (read in place).
  Samples are found by file-name pattern, or listed by one of Marigold's `data_split/` files.
- `FolderDataset(root)`: `images/*.jpg|png` with `depth/<stem>.npy|.png|.exr` (metres; 16-bit PNG in mm).
- `SyntheticDataset(count)`: the project's procedural validation scenes (seeds from 10**9 on).

Images are read as stored: EXIF orientation is ignored, because the ground truth is aligned with the stored
pixel grid. The depth may be smaller than the image (evaluation resizes the prediction to the depth).
"""

from __future__ import annotations

import io
import math
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from betterdepth_engine import depthfile
from betterdepth_engine.depthfile import decode_depth, read_depth_file
from betterdepth_engine.errors import BetterDepthError

# KITTI benchmark crop (Uhrig et al.): the bottom-centre 352 x 1216 pixels, where the LiDAR has points.
KB_CROP_HEIGHT, KB_CROP_WIDTH = 352, 1216
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class DepthSample:
    name: str  # the image's path relative to the dataset root: unique within the dataset
    rgb: np.ndarray  # H x W x 3 uint8
    depth_m: np.ndarray  # h x w float32, metres along the camera axis; 0 where invalid
    valid_mask: np.ndarray  # h x w bool: pixels that count in the metrics
    # This sample's own depth range where it is known (a synthetic scene's far limit); predictions are clipped
    # to the tighter of it and the protocol's range, as benchmarks clip to their sensor's range.
    max_depth_m: float = math.inf
    # The camera at the depth map's size (`recon.camera.Intrinsics`) where it is known exactly (synthetic
    # scenes): the normal metrics lift the aligned prediction and the ground truth with it; else they are NaN.
    intrinsics: object | None = None


@dataclass(frozen=True)
class EvalProtocol:
    """How a dataset is evaluated (Marigold's settings for its benchmarks)."""

    min_depth_m: float = 1e-3
    max_depth_m: float = math.inf
    processing_resolution: int | None = None  # refiner long side; 0 = native; None = the refiner's default
    alignment_max_resolution: int | None = None  # fit scale/shift on a subsample this large (ETH3D)
    dense_ground_truth: bool = True  # False (LiDAR) skips boundary F1 and DBE


# ---------------------------------------------------------------------------------------------- file access


class DatasetFiles:
    """The files under a dataset root: a folder or a (possibly compressed) tar archive, by relative path."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._tar = None
        if self.root.is_dir():
            self._members = {p.relative_to(self.root).as_posix(): p for p in self.root.rglob("*") if p.is_file()}
        elif self.root.is_file() and tarfile.is_tarfile(self.root):
            self._tar = tarfile.open(self.root)
            # Marigold's tars name members "./scene/file"; strip that so names match its split files.
            self._members = {m.name.removeprefix("./"): m for m in self._tar.getmembers() if m.isfile()}
        else:
            what = "does not exist" if not self.root.exists() else "is neither a folder nor a tar archive"
            raise BetterDepthError(BetterDepthError.BAD_INPUT, f"Dataset root '{self.root}' {what}.",
                                   "Pass the dataset's folder or its .tar file (as Marigold distributes it).")

    def names(self) -> list[str]:
        return sorted(self._members)

    def read(self, name: str) -> bytes:
        if name not in self._members:
            raise BetterDepthError(BetterDepthError.BAD_INPUT, f"'{name}' is not in the dataset at '{self.root}'.",
                                   "Check that the split file belongs to this dataset and root.")
        if self._tar is None:
            return self._members[name].read_bytes()
        return self._tar.extractfile(self._members[name]).read()


# ---------------------------------------------------------------------------------------------- decoders


def decode_rgb(data: bytes) -> np.ndarray:
    """Image bytes -> H x W x 3 uint8, as stored (no EXIF rotation)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.array(image.convert("RGB"))  # a writable copy: torch warns on read-only arrays


def decode_pfm(data: bytes) -> np.ndarray:
    """A grayscale PFM (Middlebury's disparity format) -> H x W float64, top row first."""
    header, dimensions, scale, pixels = data.split(b"\n", 3)
    if header.strip() != b"Pf":
        raise ValueError("it is not a grayscale PFM file (header 'Pf')")
    width, height = (int(v) for v in dimensions.split())
    byte_order = "<" if float(scale) < 0 else ">"  # a negative scale means little-endian
    values = np.frombuffer(pixels, dtype=f"{byte_order}f4", count=width * height)
    return np.flipud(values.reshape(height, width)).astype(np.float64)  # PFM stores the bottom row first


def middlebury_depth_m(disparity_px: np.ndarray, calibration_text: str) -> np.ndarray:
    """Middlebury 2014 disparity (pixels; inf = unknown) -> depth in metres, 0 where unknown.

    depth_mm = baseline_mm * focal_px / (disparity_px + doffs_px), with calib.txt's `cam0`, `baseline`, `doffs`.
    """
    fields = dict(line.split("=", 1) for line in calibration_text.splitlines() if "=" in line)
    focal_px = float(fields["cam0"].strip("[] ").split()[0])
    baseline_mm, doffs_px = float(fields["baseline"]), float(fields["doffs"])
    known = np.isfinite(disparity_px) & (disparity_px + doffs_px > 0)
    depth_mm = np.divide(baseline_mm * focal_px, disparity_px + doffs_px, out=np.zeros_like(disparity_px),
                         where=known)
    return depth_mm / 1000.0


def kb_crop(array: np.ndarray) -> np.ndarray:
    """KITTI benchmark crop: 352 rows from the bottom, 1216 columns from the centre (image or depth)."""
    top, left = array.shape[0] - KB_CROP_HEIGHT, (array.shape[1] - KB_CROP_WIDTH) // 2
    return array[top:top + KB_CROP_HEIGHT, left:left + KB_CROP_WIDTH]


def kitti_eigen_region(shape: tuple[int, int]) -> np.ndarray:
    """Eigen et al.'s evaluation region for KITTI, as fractions of the (cropped) image, as in BTS and Marigold."""
    height, width = shape
    region = np.zeros(shape, dtype=bool)
    region[int(0.3324324 * height):int(0.91351351 * height), int(0.0359477 * width):int(0.96405229 * width)] = True
    return region


def nyu_eigen_region(shape: tuple[int, int]) -> np.ndarray:
    """Eigen et al.'s crop of NYUv2's 480 x 640 frames: rows 45..470, columns 41..600 (the white border out)."""
    region = np.zeros(shape, dtype=bool)
    region[45:471, 41:601] = True
    return region


# Depth decoders: (read, companion paths, image (h, w)) -> (depth in metres, extra valid mask or None).
DepthDecoder = Callable[[Callable[[str], bytes], tuple[str, ...], tuple[int, int]],
                        tuple[np.ndarray, np.ndarray | None]]


def png_depth(units_per_metre: float) -> DepthDecoder:
    """16-bit PNG depth in 1 / units_per_metre metres (1000: millimetres, 256: KITTI, 100: centimetres)."""
    return lambda read, paths, image_size: (decode_depth(read(paths[0]), ".png", paths[0]) / units_per_metre, None)


def eth3d_depth(read, paths, image_size) -> tuple[np.ndarray, None]:
    """ETH3D: raw little-endian float32 at the image's resolution, no header; inf = no measurement."""
    values = np.frombuffer(read(paths[0]), dtype="<f4")
    if values.size != image_size[0] * image_size[1]:
        raise ValueError(f"it holds {values.size} values, not {image_size[0]} x {image_size[1]}")
    depth_m = values.reshape(image_size).astype(np.float64)
    return np.where(np.isfinite(depth_m), depth_m, 0.0), None


def diode_depth(read, paths, image_size) -> tuple[np.ndarray, np.ndarray]:
    """DIODE: `<stem>_depth.npy` (H x W x 1, metres) and `<stem>_depth_mask.npy` (the scanner's validity)."""
    return decode_depth(read(paths[0]), ".npy", paths[0]), decode_depth(read(paths[1]), ".npy", paths[1]) > 0


def middlebury_depth(read, paths, image_size) -> tuple[np.ndarray, None]:
    """Middlebury 2014: `disp0.pfm` converted to depth with `calib.txt`."""
    return middlebury_depth_m(decode_pfm(read(paths[0])), read(paths[1]).decode()), None


# ---------------------------------------------------------------------------------------------- benchmarks


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where a benchmark's files are and how to read them.

    `image_pattern` matches image paths relative to the root; its named groups fill the `companions`
    templates (depth file first, then masks or calibration). An image counts as a sample when all its
    companions exist; a split file lists the same paths, one sample per line.
    """

    description: str
    image_pattern: str
    companions: tuple[str, ...]
    decode_depth: DepthDecoder
    protocol: EvalProtocol
    expected_size: int | None = None  # samples in the standard evaluation split
    crop: Callable[[np.ndarray], np.ndarray] | None = None  # applied to image and depth
    eval_region: Callable[[tuple[int, int]], np.ndarray] | None = None  # pixels evaluated, after the crop


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "nyu": BenchmarkSpec(
        "NYUv2 labeled test split (654), raw depth, Eigen crop",
        r"(?P<folder>test/[^/]+)/rgb_(?P<id>\d+)\.png", ("{folder}/depth_{id}.png",),
        png_depth(1000.0), EvalProtocol(1e-3, 10.0, processing_resolution=0), 654, eval_region=nyu_eigen_region),
    "kitti": BenchmarkSpec(
        "KITTI Eigen test split (652 with ground truth), KB crop 352 x 1216, Eigen region",
        r"[^/]+/(?P<drive>[^/]+)/image_02/data/(?P<frame>\d+)\.png",
        ("{drive}/proj_depth/groundtruth/image_02/{frame}.png",),
        png_depth(256.0), EvalProtocol(1e-5, 80.0, processing_resolution=0, dense_ground_truth=False), 652,
        crop=kb_crop, eval_region=kitti_eigen_region),
    "eth3d": BenchmarkSpec(
        "ETH3D high-resolution multi-view DSLR images (454), processed at 756 px",
        r"rgb/(?P<scene>[^/]+)/images/dslr_images/(?P<file>[^/]+)",
        ("depth/{scene}_dslr_depth/{scene}/ground_truth_depth/dslr_images/{file}",),
        eth3d_depth, EvalProtocol(1e-5, math.inf, processing_resolution=756, alignment_max_resolution=1024), 454),
    "scannet": BenchmarkSpec(
        "ScanNet v2 validation frames sampled by Marigold (800)",
        r"(?P<scene>[^/]+)/color/(?P<frame>\d+)\.jpg", ("{scene}/depth/{frame}.png",),
        png_depth(1000.0), EvalProtocol(1e-3, 10.0, processing_resolution=0), 800),
    "diode": BenchmarkSpec(
        "DIODE validation split, indoor and outdoor (771), processed at 640 px",
        r"(?P<stem>.+)\.png", ("{stem}_depth.npy", "{stem}_depth_mask.npy"),
        diode_depth, EvalProtocol(0.6, 350.0, processing_resolution=640), 771),
    "middlebury": BenchmarkSpec(
        "Middlebury 2014 stereo scenes, left view (im0, disp0.pfm, calib.txt)",
        r"(?P<scene>[^/]+)/im0\.png", ("{scene}/disp0.pfm", "{scene}/calib.txt"),
        middlebury_depth, EvalProtocol(1e-3, math.inf)),
    "hypersim": BenchmarkSpec(
        "Hypersim, Marigold's processed PNGs (planar depth in mm), for training",
        r"(?P<scene>[^/]+)/rgb_(?P<frame>[^/]+)\.png", ("{scene}/depth_plane_{frame}.png",),
        png_depth(1000.0), EvalProtocol(1e-5, 65.0)),
    "vkitti": BenchmarkSpec(
        "Virtual KITTI 2 (depth PNG in cm), KB crop, for training",
        r"rgb/(?P<path>.+)/frames/rgb/(?P<camera>Camera_\d+)/rgb_(?P<frame>\d+)\.jpg",
        ("depth/{path}/frames/depth/{camera}/depth_{frame}.png",),
        png_depth(100.0), EvalProtocol(1e-5, 80.0), crop=kb_crop),
}


def find_samples(names: list[str], spec: BenchmarkSpec) -> list[tuple[str, ...]]:
    """(image, *companions) for every image whose companion files all exist."""
    present = set(names)
    pattern = re.compile(spec.image_pattern)
    entries = []
    for name in names:
        match = pattern.fullmatch(name)
        if match:
            companions = tuple(template.format(**match.groupdict()) for template in spec.companions)
            if all(companion in present for companion in companions):
                entries.append((name, *companions))
    return entries


def read_split_file(path: Path, columns: int) -> list[tuple[str, ...]]:
    """The first `columns` paths of each line of a Marigold split file; lines without ground truth ("None")
    are left out, as Marigold does for KITTI's frames without LiDAR."""
    entries = []
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if len(fields) >= columns and "None" not in fields[:columns]:
            entries.append(tuple(fields[:columns]))
    return entries


class BenchmarkDataset:
    """One benchmark's samples under a root folder or tar."""

    def __init__(self, name: str, spec: BenchmarkSpec, root: str | Path, split_file: str | Path | None = None):
        self.name, self.spec, self.protocol = name, spec, spec.protocol
        self.files = DatasetFiles(root)
        if split_file is not None:
            self.entries = read_split_file(Path(split_file), 1 + len(spec.companions))
        else:
            self.entries = find_samples(self.files.names(), spec)
        if not self.entries:
            raise BetterDepthError(
                BetterDepthError.BAD_INPUT, f"No {name} samples found in '{root}'.",
                f"Expected {spec.description}: images matching {spec.image_pattern} with "
                f"{', '.join(spec.companions)} (see docs/evaluation.md).")

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> DepthSample:
        image_path, *companions = self.entries[index]
        try:
            rgb = decode_rgb(self.files.read(image_path))
            depth_m, extra_valid = self.spec.decode_depth(self.files.read, tuple(companions), rgb.shape[:2])
        except BetterDepthError:
            raise
        except Exception as error:  # PIL, numpy and struct raise assorted types for a broken file
            raise BetterDepthError(
                BetterDepthError.BAD_DEPTH, f"Cannot read {self.name} sample '{image_path}': {error}",
                "Re-extract the dataset; the file is damaged or not of this dataset.") from None
        if self.spec.crop is not None:
            rgb, depth_m = self.spec.crop(rgb), self.spec.crop(depth_m)
            extra_valid = None if extra_valid is None else self.spec.crop(extra_valid)
        valid = _valid_depth(depth_m, self.protocol)
        if extra_valid is not None:
            valid &= extra_valid
        if self.spec.eval_region is not None:
            valid &= self.spec.eval_region(depth_m.shape)
        return DepthSample(image_path, rgb, np.where(valid, depth_m, 0.0).astype(np.float32), valid)


def _valid_depth(depth_m: np.ndarray, protocol: EvalProtocol) -> np.ndarray:
    """Marigold's validity: strictly inside the dataset's depth range (0 and NaN are never valid)."""
    with np.errstate(invalid="ignore"):
        return (depth_m > protocol.min_depth_m) & (depth_m < protocol.max_depth_m)


def open_benchmark(name: str, root: str | Path, split_file: str | Path | None = None) -> BenchmarkDataset:
    if name not in BENCHMARKS:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, f"Unknown dataset '{name}'.",
                               f"Choose from: {', '.join(BENCHMARKS)}; or use --folder for your own data.")
    return BenchmarkDataset(name, BENCHMARKS[name], root, split_file)


# ---------------------------------------------------------------------------------------------- own data


class FolderDataset:
    """Users' own data: `ROOT/images/<stem>.jpg|jpeg|png` and `ROOT/depth/<stem>.npy|.png|.exr`.

    Depth is in metres (.npy, .exr) or millimetres (16-bit PNG), read by `depthfile.read_depth_file`;
    0, negative and non-finite values are invalid.
    """

    def __init__(self, root: str | Path, protocol: EvalProtocol = EvalProtocol()):
        self.root, self.name, self.protocol = Path(root), Path(root).name, protocol
        images_dir, depth_dir = self.root / "images", self.root / "depth"
        if not images_dir.is_dir() or not depth_dir.is_dir():
            raise BetterDepthError(BetterDepthError.BAD_INPUT, f"'{self.root}' lacks an images/ or depth/ folder.",
                                   "Lay out your data as ROOT/images/<stem>.jpg|png and ROOT/depth/<stem>.npy|png|exr.")
        images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        self.entries, missing = [], []
        for image in images:
            depth = next((depth_dir / f"{image.stem}{s}" for s in depthfile.SUFFIXES
                          if (depth_dir / f"{image.stem}{s}").is_file()), None)
            if depth is None:
                missing.append(image.name)
            else:
                self.entries.append((image, depth))
        if missing:
            raise BetterDepthError(BetterDepthError.BAD_INPUT,
                                   f"{len(missing)} image(s) in '{images_dir}' have no depth file: "
                                   f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}.",
                                   f"Add depth/<stem>{'|'.join(depthfile.SUFFIXES)} for each image, or remove the "
                                   "image.")
        if not self.entries:
            raise BetterDepthError(BetterDepthError.BAD_INPUT, f"'{images_dir}' holds no .jpg or .png images.",
                                   "Put the images under ROOT/images/.")

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> DepthSample:
        image_path, depth_path = self.entries[index]
        try:
            rgb = decode_rgb(image_path.read_bytes())
        except Exception as error:
            raise BetterDepthError(BetterDepthError.BAD_IMAGE, f"Cannot read sample '{image_path.name}': {error}",
                                   "Images must be JPEG or PNG.") from None
        try:
            depth_m = read_depth_file(depth_path)
        except BetterDepthError as error:
            raise BetterDepthError(error.code, f"Sample '{image_path.name}': {error.message}", error.hint) from None
        if depth_path.suffix.lower() == ".png":
            depth_m = depth_m / 1000.0  # millimetres
        valid = _valid_depth(depth_m, self.protocol)
        return DepthSample(image_path.name, rgb, np.where(valid, depth_m, 0.0).astype(np.float32), valid)


@dataclass
class SyntheticDataset:
    """The project's procedural validation scenes with exact depth (`data.synthetic`, split "val").

    `kind` renders every scene as that layout (e.g. `texture_copy`: flat walls and floors carrying
    high-contrast pictures, text and tiles, no relief); None draws the layout from the seed as training does.
    `first` skips that many scenes, so that scenes chosen on and scenes reported on can be kept apart.
    """

    count: int
    height: int = 240
    width: int = 320
    kind: str | None = None
    first: int = 0
    protocol: EvalProtocol = field(default_factory=EvalProtocol)

    @property
    def name(self) -> str:
        return "synthetic-val" if self.kind is None else f"synthetic-val-{self.kind}"

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> DepthSample:
        import torch

        from betterdepth_engine.data.synthetic import generate_scene, seed_for
        from betterdepth_engine.recon.camera import intrinsics_from_focal_px

        if not 0 <= index < self.count:
            raise IndexError(index)
        scene_number = self.first + index
        scene = generate_scene(seed_for("val", scene_number), self.height, self.width, kind=self.kind)
        rgb = (scene.image.permute(1, 2, 0).clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
        valid = scene.valid_mask.cpu().numpy() & _valid_depth(scene.depth.cpu().numpy(), self.protocol)
        depth_m = np.where(valid, scene.depth.cpu().numpy(), 0.0).astype(np.float32)
        intrinsics = intrinsics_from_focal_px(self.width, self.height, scene.focal_px, "synthetic")
        return DepthSample(f"val_{scene_number:05d}_{scene.kind}", rgb, depth_m, valid, scene.max_depth_m, intrinsics)

