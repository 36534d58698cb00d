"""How much an autoencoder loses on depth maps: ground truth encoded and decoded, scored like a prediction.

    python scripts/autoencoder_ceiling.py OLD_AE NEW_AE [--scenes 100] [--figure docs/images/autoencoders.jpg]

Each argument is an autoencoder folder (or a refiner folder, whose vae/ is used). The first SCENES synthetic
validation scenes (320x240) are normalised to [-1, 1] as the refiner's target is, sent through each
autoencoder (posterior mean, as the refiner encodes), and scored with Marigold's protocol (clipped to each
scene's depth range, as `betterdepth eval --synthetic` does): no refiner in its
latent space can do better than this. Prints a markdown table; --figure writes ground truth | each
autoencoder's reconstruction (colorized disparity) for the first scenes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from betterdepth_engine.data.synthetic import generate_scenes, seed_for
from betterdepth_engine.eval import metrics
from betterdepth_engine.eval.report import TABLE_COLUMNS, markdown_row, markdown_table
from betterdepth_engine.train.objectives import normalized_target_disparity
from betterdepth_engine.visualize import colorize_disparity


def load_autoencoder(folder: Path):
    from diffusers import AutoencoderKL

    folder = folder / "vae" if (folder / "vae").is_dir() else folder
    return AutoencoderKL.from_pretrained(folder, torch_dtype=torch.float32).eval()


@torch.no_grad()
def reconstruct(autoencoder, normalized_disparity: torch.Tensor) -> torch.Tensor:
    """[B, 1, H, W] in [-1, 1] -> the same after encoding (posterior mean) and decoding (mean of 3 channels)."""
    latent = autoencoder.encode(normalized_disparity.repeat(1, 3, 1, 1)).latent_dist.mode()
    return autoencoder.decode(latent).sample.mean(1, keepdim=True).clamp(-1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("autoencoders", type=Path, nargs="+")
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--figure", type=Path, help="JPEG: ground truth | each reconstruction, first 4 scenes")
    args = parser.parse_args()

    samples = generate_scenes([seed_for("val", index) for index in range(args.scenes)], 240, 320)
    autoencoders = [load_autoencoder(folder) for folder in args.autoencoders]
    scores = [[] for _ in autoencoders]
    figure_rows = []
    for sample in samples:
        target, _ = normalized_target_disparity(sample.depth[None, None], sample.valid_mask[None, None], True)
        valid = sample.valid_mask.numpy()
        reconstructions = [reconstruct(autoencoder, target)[0, 0].numpy() for autoencoder in autoencoders]
        for score, reconstruction in zip(scores, reconstructions):
            depth_m = metrics.aligned_depth(reconstruction, sample.depth.numpy(), valid, 1e-3, sample.max_depth_m)
            score.append(metrics.depth_metrics(depth_m, sample.depth.numpy(), valid))
        if args.figure and len(figure_rows) < 4:
            figure_rows.append(np.concatenate(
                [colorize_disparity(map_, (-1.0, 1.0)) for map_ in (target[0, 0].numpy(), *reconstructions)], axis=1))

    print(markdown_table({}))  # the header; rows one by one, since the same folder may be given twice
    for folder, score in zip(args.autoencoders, scores):
        means = {name: np.nanmean([entry[name] for entry in score]) for name, *_ in TABLE_COLUMNS}
        print(markdown_row(str(folder), means))
    if args.figure:
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(figure_rows, axis=0)).save(args.figure, quality=90)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
