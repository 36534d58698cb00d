"""Per-stage timings of the BetterDepth pipeline, and ours / diffusers' MarigoldDepthPipeline on equal weights.

    python scripts/bench_pipeline.py                      # CPU: tiny refiner, default base architecture, 512 px
    python scripts/bench_pipeline.py --size default       # the shipped models (betterdepth_engine/weights)
    python scripts/bench_pipeline.py --size full --resolution 768 --device cuda --dtype fp16
                                                         # GPU: SD2-size U-Net (12 ch) + SD2 VAE, DA-V2-Small

Except with --size default, weights are random (the architectures and sizes are what is timed). Marigold gets
the same VAE, a U-Net of the same size with its 8 input channels (random weights), the same steps and
resolution, one member; its empty-prompt embedding is cached after the warm-up call, as in normal use.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from betterdepth_engine.commands.estimate import resolve_device
from betterdepth_engine.images import load_image
from betterdepth_engine.models import tiny
from betterdepth_engine.models.default_base import SmallDepthNet
from betterdepth_engine.models.loading import DEFAULT_WEIGHTS, load_base_model
from betterdepth_engine.models.refiner import DepthRefiner, RefinerConfig, trailing_ddim_scheduler
from betterdepth_engine.pipeline import BetterDepthPipeline, RefineOptions

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "coffee.jpg"

SD2_VAE = dict(
    block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4, sample_size=768,
)
SD2_UNET = dict(
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=1024,
    attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, sample_size=96, out_channels=4,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
)


def build_components(size: str):
    """(VAE, refiner U-Net with 12 input channels, Marigold U-Net with 8, the base model's kind)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    if size == "default":
        refiner = DepthRefiner.from_pretrained(DEFAULT_WEIGHTS / "refiner", dtype=torch.float32)
        marigold_config = {**refiner.unet.config, "in_channels": 8}
        return refiner.vae, refiner.unet, UNet2DConditionModel.from_config(marigold_config), "default"
    if size == "tiny":
        return tiny.tiny_vae(), tiny.tiny_unet(12), tiny.tiny_unet(8), "default-architecture"
    return (AutoencoderKL(**SD2_VAE), UNet2DConditionModel(in_channels=12, **SD2_UNET),
            UNet2DConditionModel(in_channels=8, **SD2_UNET), "depth-anything-v2-small")


def save_base(kind: str, folder: Path) -> None:
    if kind == "default":
        SmallDepthNet.from_pretrained(DEFAULT_WEIGHTS / "base").save_pretrained(folder)
        return
    if kind == "default-architecture":
        SmallDepthNet().save_pretrained(folder)
        return
    from transformers import (DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config,
                              DPTImageProcessor)

    backbone = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, patch_size=14,
                            image_size=518, out_indices=[3, 6, 9, 12], reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, neck_hidden_sizes=[48, 96, 192, 384],
                                 fusion_hidden_size=64, depth_estimation_type="relative")
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessor(size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      do_pad=False).save_pretrained(folder)


def timed(function, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("tiny", "default", "full"), default="tiny")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--ensemble-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    parser.add_argument("--components", default="compact", choices=("compact", "diffusers"),
                        help="the refiner's run-time modules (compact: what estimate/serve load) or diffusers' own")
    args = parser.parse_args()
    device, dtype = resolve_device(args.device, args.dtype)

    vae, unet, marigold_unet, base_kind = build_components(args.size)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        scheduler = trailing_ddim_scheduler(tiny.tiny_scheduler_config(), zero_terminal_snr=True)
        embedding = torch.zeros(1, 2, unet.config.cross_attention_dim)
        DepthRefiner(vae, unet, scheduler, embedding, RefinerConfig()).save_pretrained(folder / "refiner")
        save_base(base_kind, folder / "base")
        start = time.perf_counter()
        base = load_base_model(str(folder / "base"), device, dtype)
        refiner = DepthRefiner.from_pretrained(folder / "refiner", dtype=dtype,
                                               inference_only=args.components == "compact").to(device)
        load_seconds = time.perf_counter() - start
    pipeline = BetterDepthPipeline(base, refiner)
    marigold = tiny.marigold_pipeline(vae, marigold_unet).to(device=device, dtype=dtype)
    marigold.set_progress_bar_config(disable=True)

    image = load_image(SAMPLE)
    options = RefineOptions(denoising_steps=args.steps, ensemble_size=args.ensemble_size,
                            processing_resolution=args.resolution)

    def run_marigold():
        marigold(image.rgb, num_inference_steps=args.steps, ensemble_size=args.ensemble_size,
                 processing_resolution=args.resolution, generator=torch.Generator().manual_seed(0), output_type="pt")

    with torch.inference_mode():
        pipeline(image, options)  # warm-up (kernels, allocator)
        run_marigold()
        stage_runs: list[dict[str, float]] = []
        totals, marigold_totals = [], []
        for _ in range(args.repeats):
            totals.append(timed(lambda: stage_runs.append(pipeline(image, options).timings), device))
            marigold_totals.append(timed(run_marigold, device))

    stages = {stage: statistics.median(run[stage] for run in stage_runs) for stage in stage_runs[0]}
    refine_seconds = sum(seconds for stage, seconds in stages.items() if stage != "base")
    total = statistics.median(totals)
    marigold_total = statistics.median(marigold_totals)
    cpu = platform.processor() or platform.machine()
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads, {cpu})"
    print(f"device: {device_name}; dtype {str(dtype).removeprefix('torch.')}; size {args.size}; "
          f"{args.resolution} px; {args.steps} steps; {args.ensemble_size} member(s); median of {args.repeats}")
    print(f"parameters: U-Net {sum(p.numel() for p in unet.parameters()) / 1e6:.1f} M, "
          f"VAE {sum(p.numel() for p in vae.parameters()) / 1e6:.1f} M, base {base_kind}; "
          f"refiner modules: {type(refiner.unet).__module__.split('.')[0]} ({type(refiner.unet).__name__})\n")
    print("| stage | ms |\n|---|---:|")
    print(f"| load (from disk) | {load_seconds * 1000:.0f} |")
    for stage, seconds in stages.items():
        print(f"| {stage} | {seconds * 1000:.1f} |")
    print(f"| **BetterDepth total (base + refine)** | **{total * 1000:.1f}** |")
    print(f"| refine only (prepare .. ensemble) | {refine_seconds * 1000:.1f} |")
    print(f"| diffusers MarigoldDepthPipeline, same architectures and weights | {marigold_total * 1000:.1f} |")
    print(f"| **ratio ours (refine only) / Marigold** | **{refine_seconds / marigold_total:.2f}** |")
    print(f"| ratio ours (with base) / Marigold | {total / marigold_total:.2f} |")


if __name__ == "__main__":
    main()
