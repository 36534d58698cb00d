"""`betterdepth train autoencoder|base|refiner`: the options are the trainers' settings dataclasses."""

from __future__ import annotations

import importlib

HELP = "train the autoencoder, the base model or the refiner"
# model -> (module, settings class, trainer function)
TRAINERS = {
    "autoencoder": ("betterdepth_engine.train.autoencoder", "AutoencoderTrainingSettings", "train_autoencoder"),
    "base": ("betterdepth_engine.train.base", "BaseTrainingSettings", "train_base"),
    "refiner": ("betterdepth_engine.train.refiner", "RefinerTrainingSettings", "train_refiner"),
}

# Help per option name; "model.option" where one name means different things for different models.
OPTION_HELP = {
    "output_dir": "run folder: config, log.jsonl, checkpoint/ and the exported model; rerun to resume",
    "steps": "optimizer steps in total (a resumed run continues up to this)",
    "autoencoder": "trained autoencoder folder (from `betterdepth train autoencoder`)",
    "base.init": "a trained base folder to fine-tune (from `betterdepth train base`); its architecture is kept",
    "init": "start from: a Stable Diffusion 2 or Marigold checkpoint (conv_in inflated to 12 channels), or a "
            "trained refiner folder to fine-tune",
    "fine_tune_decoder": "a trained autoencoder folder: freeze its encoder (the latent space a refiner was trained "
                         "in stays valid) and train only its decoder, on depth maps",
    "base": "'simulated' (ground truth blurred and perturbed as in data/degrade.py; simulated:KIND picks another "
            "degradation: blurry (the default), mild or varied) or a base model folder / alias",
    "second_base": "a second base, in the same forms as --base, that conditions a batch with probability "
                   "--second-base-share (e.g. a trained base and simulated:varied in one run)",
    "second_base_share": "probability that a batch is conditioned by --second-base",
    "conditioning": "feed the base prediction to the U-Net (--no-conditioning: ablation)",
    "pre_alignment": "least-squares align the base to the target (--no-pre-alignment: ablation)",
    "patch_mask": "drop patches where base and target disagree (--no-patch-mask: ablation)",
    "eta": "patch mask threshold: per-patch RMS error in [-1, 1] units (paper: 0.1)",
    "high_timestep_fraction": "share of samples at t = 999, where 1-step inference starts",
    "decoded_gradient_weight": "weight of a loss on the decoded depth's neighbour differences against the "
                               "target's (kept patches; 0 = the paper's latent loss only)",
    "mixed_precision": "no, bf16 or fp16 (CUDA only)",
    "cooldown_steps": "decay the learning rate linearly to 0 over the last N steps; may be added when resuming a "
                      "run that has not reached them",
}


def _settings_class(model: str):
    module_name, class_name, _ = TRAINERS[model]
    return getattr(importlib.import_module(module_name), class_name)


def add_parser(subparsers) -> None:
    from betterdepth_engine.options import add_options

    parser = subparsers.add_parser("train", help=HELP,
                                   description="Train a model on synthetic scenes generated on the fly. Each run "
                                               "is resumable: run the same command again.")
    models = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    for model in TRAINERS:
        sub = models.add_parser(model, help=f"train the {model}")
        shared = {name: text for name, text in OPTION_HELP.items() if "." not in name}
        own = {name.split(".", 1)[1]: text for name, text in OPTION_HELP.items() if name.startswith(f"{model}.")}
        add_options(sub, _settings_class(model), help_texts={**shared, **own})
        sub.set_defaults(run=run)


def run(args) -> int:
    from betterdepth_engine.options import from_options

    module_name, _, function_name = TRAINERS[args.model]
    settings = from_options(_settings_class(args.model), args)
    exported = getattr(importlib.import_module(module_name), function_name)(settings)
    print(f"betterdepth: exported {args.model} to {exported}")
    return 0
