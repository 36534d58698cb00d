"""Speed and peak GPU memory of the paper's training recipe (`betterdepth train refiner`) on random weights.

    python scripts/bench_training.py                           # GPU: full size (what scripts/train_paper_recipe.sh trains)
    python scripts/bench_training.py --size tiny --device cpu  # the same path with tiny models, as a check

Builds in a temporary folder, offline: a Stable Diffusion 2-size checkpoint (U-Net 866 M, VAE 84 M, its
scheduler, and a one-layer text encoder of SD2's width and 77 tokens: only the empty prompt's embedding is taken
from it), a Depth Anything V2 Large-size base (DINOv2-L backbone, 518 px), and a Hypersim-layout dataset of
random frames at Hypersim's 768 x 1024. Then runs the recipe's command in this process (patch 8, eta 0.1,
learning rate 3e-5, 480 x 640 crops, bf16, batch 2 per step, no accumulation) for --warmup + --steps optimizer
steps, and prints a markdown table: seconds per step after the warm-up, images per second, peak GPU memory, and
the recipe's projected time (5000 steps of batch 32 = 80,000 such micro-batches).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from betterdepth_engine.cli import main as betterdepth

RECIPE_MICRO_BATCHES = 5000 * 16  # scripts/train_paper_recipe.sh: 5000 steps, batch 32 = 2 x 16 accumulated

SD2_VAE = dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
               up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4, sample_size=768,
               scaling_factor=0.18215)
SD2_UNET = dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=1024,
                attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, sample_size=96, out_channels=4,
                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SD2_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                     prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False, steps_offset=1)
TINY_VAE = dict(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4, norm_num_groups=4,
                sample_size=64)
TINY_UNET = dict(block_out_channels=(16, 32), layers_per_block=1, cross_attention_dim=1024, attention_head_dim=4,
                 norm_num_groups=8, sample_size=16, out_channels=4,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
# (DINOv2 width, layers, heads, which layers feed the neck, neck widths, fusion width, processing size)
BASES = {"full": (1024, 24, 16, [5, 12, 18, 24], [256, 512, 1024, 1024], 256, 518),
         "tiny": (32, 4, 2, [1, 2, 3, 4], [8, 16, 32, 32], 16, 56)}


def build_stable_diffusion(folder: Path, size: str) -> None:
    """An SD2-layout checkpoint with random weights: vae/, unet/ (4 input channels), scheduler/, text encoder."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    AutoencoderKL(**(SD2_VAE if size == "full" else TINY_VAE)).save_pretrained(folder / "vae")
    UNet2DConditionModel(in_channels=4, **(SD2_UNET if size == "full" else TINY_UNET)).save_pretrained(folder / "unet")
    DDIMScheduler(**SD2_SCHEDULER).save_pretrained(folder / "scheduler")
    vocabulary, merges = folder / "vocab.json", folder / "merges.txt"
    vocabulary.write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "b</w>": 3}))
    merges.write_text("#version: 0.2\n")
    CLIPTokenizer(str(vocabulary), str(merges), model_max_length=77).save_pretrained(folder / "tokenizer")
    CLIPTextModel(CLIPTextConfig(vocab_size=4, hidden_size=1024, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=8, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                                 pad_token_id=1)).save_pretrained(folder / "text_encoder")


def build_depth_anything(folder: Path, size: str) -> None:
    """A Depth Anything V2 (relative) of the chosen size with random weights, and its image processor."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    width, layers, heads, out_indices, neck, fusion, resolution = BASES[size]
    torch.manual_seed(0)
    backbone = Dinov2Config(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                            intermediate_size=4 * width, patch_size=14, image_size=518, out_indices=out_indices,
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, neck_hidden_sizes=neck, reassemble_hidden_size=width,
                                 fusion_hidden_size=fusion, depth_estimation_type="relative")
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessor(size={"height": resolution, "width": resolution}, keep_aspect_ratio=True,
                      ensure_multiple_of=14, do_pad=False, resample=3).save_pretrained(folder)


def write_hypersim(root: Path, frames: int, height: int, width: int) -> None:
    """Random frames in the layout of Marigold's Hypersim preprocessing: rgb PNG and planar depth in mm."""
    rng = np.random.default_rng(0)
    rows, columns = np.mgrid[0:height, 0:width]
    for frame in range(frames):
        scene = root / f"ai_001_{frame:03d}"
        scene.mkdir(parents=True)
        depth_mm = (1500 + 3000 * rows / height + 500 * np.sin(columns / 40.0 + frame)).astype(np.uint16)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(scene / "rgb_cam_00_fr0000.png")
        Image.fromarray(depth_mm).save(scene / "depth_plane_cam_00_fr0000.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--frames", type=int, default=32, help="dataset frames (default: %(default)s)")
    parser.add_argument("--mixed-precision", default="bf16")
    parser.add_argument("--data-workers", type=int, default=8)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    total = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        clock = time.perf_counter()
        build_stable_diffusion(scratch / "sd2", args.size)
        build_depth_anything(scratch / "base", args.size)
        frame_size = (768, 1024) if args.size == "full" else (args.height + 16, args.width + 16)
        write_hypersim(scratch / "hypersim", args.frames, *frame_size)
        build_seconds = time.perf_counter() - clock
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        clock = time.perf_counter()
        status = betterdepth([
            "train", "refiner", "--output-dir", str(scratch / "run"), "--datasets", f"hypersim:{scratch / 'hypersim'}",
            "--base", str(scratch / "base"), "--init", str(scratch / "sd2"), "--no-sky-as-far",
            "--patch-size", "8", "--eta", "0.1", "--learning-rate", "3e-5", "--steps", str(total),
            "--batch-size", str(args.batch_size), "--gradient-accumulation", "1", "--height", str(args.height),
            "--width", str(args.width), "--mixed-precision", args.mixed_precision, "--device", args.device,
            "--data-workers", str(args.data_workers), "--checkpoint-every", str(10 * total), "--log-every", "1"])
        run_seconds = time.perf_counter() - clock
        if status:
            raise SystemExit(f"bench_training: the training command failed with status {status}")
        log = [json.loads(line) for line in (scratch / "run" / "log.jsonl").read_text().splitlines()]
    elapsed = {entry["step"]: entry["elapsed_s"] for entry in log}
    per_step = (elapsed[total] - elapsed[args.warmup]) / args.steps
    peak_gib = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.machine()})"
    projected_hours = per_step * RECIPE_MICRO_BATCHES / 3600
    print(f"device: {device}; torch {torch.__version__}; size {args.size}; {args.height}x{args.width} crops; "
          f"batch {args.batch_size}; {args.mixed_precision}; {args.steps} timed steps after {args.warmup}\n")
    print("| | value |\n|---|---:|")
    print(f"| building the random checkpoints and dataset (s) | {build_seconds:.0f} |")
    print(f"| the whole training command (s) | {run_seconds:.0f} |")
    print(f"| seconds per optimizer step (batch {args.batch_size}) | {per_step:.3f} |")
    print(f"| images per second | {args.batch_size / per_step:.1f} |")
    print(f"| peak GPU memory allocated (GiB) | {peak_gib:.1f} |")
    print(f"| the recipe's 5000 x 32 images, projected (hours, one GPU) | {projected_hours:.1f} |")


if __name__ == "__main__":
    main()
