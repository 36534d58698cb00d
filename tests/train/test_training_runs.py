"""Short real training runs on synthetic scenes: they export loadable models and resume exactly."""

import json

import pytest
import torch
from safetensors.torch import load_file

from betterdepth_engine.cli import main
from betterdepth_engine.errors import BetterDepthError

SMALL = ["--batch-size", "2", "--height", "64", "--width", "64", "--log-every", "1", "--checkpoint-every", "2"]


def _weights(folder):
    return load_file(next(folder.glob("*.safetensors")))


def _assert_refiner_resumes_exactly(command: list[str], root, steps: int) -> None:
    """A run of `steps` straight and one stopped after 2 and resumed end with the same U-Net."""
    assert main([*command, "--output-dir", str(root / "straight"), "--steps", str(steps)]) == 0
    assert main([*command, "--output-dir", str(root / "resumed"), "--steps", "2"]) == 0
    assert main([*command, "--output-dir", str(root / "resumed"), "--steps", str(steps)]) == 0
    expected = _weights(root / "straight" / "refiner" / "unet")
    actual = _weights(root / "resumed" / "refiner" / "unet")
    assert all(torch.equal(expected[name], actual[name]) for name in expected)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny autoencoder and base, trained for a few steps, shared by the refiner tests."""
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", "autoencoder", "--output-dir", str(root / "ae"), "--preset", "tiny", "--steps", "2", *SMALL]) == 0
    assert main(["train", "base", "--output-dir", str(root / "base"), "--channels", "8", "16", "--steps", "2", *SMALL]) == 0
    return root


@pytest.mark.slow
def test_base_training_resumes_exactly(tmp_path, trained):
    straight = trained / "base"
    resumed = tmp_path / "base"
    common = ["train", "base", "--output-dir", str(resumed), "--channels", "8", "16", *SMALL]
    assert main([*common, "--steps", "1"]) == 0  # stops after step 1 (checkpoint at the last step)
    assert main([*common, "--steps", "2"]) == 0  # resumes at step 2
    expected, actual = _weights(straight / "base"), _weights(resumed / "base")
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    log = [json.loads(line) for line in (resumed / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2]
    # A run killed after logging past its last checkpoint: resuming logs those steps again, once.
    with (resumed / "log.jsonl").open("a") as stale:
        stale.write(json.dumps({"step": 3, "elapsed_s": 1.0, "loss": 9.0}) + "\n")
    assert main([*common, "--steps", "3"]) == 0
    log = [json.loads(line) for line in (resumed / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3] and log[-1]["loss"] != 9.0


def test_base_fine_tuning_starts_from_the_given_base(tmp_path, trained, capsys):
    """--init: the run starts from the given base's weights (learning rate 0 keeps them exactly) and exports it
    with the processing resolution asked for; another architecture is refused before a run folder exists."""
    initial = trained / "base" / "base"
    tuned = tmp_path / "tuned"
    common = ["train", "base", "--init", str(initial), *SMALL, "--steps", "1"]
    assert main([*common, "--output-dir", str(tuned), "--channels", "8", "16", "--learning-rate", "0",
                 "--processing-resolution", "96"]) == 0
    expected, actual = _weights(initial), _weights(tuned / "base")
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    assert json.loads((tuned / "base" / "config.json").read_text())["processing_resolution"] == 96

    refused = tmp_path / "refused"
    assert main([*common, "--output-dir", str(refused), "--channels", "8", "32"]) == 2
    assert "--channels 8 32 differs from the --init base's 8 16" in capsys.readouterr().err
    assert not refused.exists()
    assert main([*common, "--output-dir", str(refused), "--init", str(tmp_path / "missing")]) == 2
    assert "No SmallDepthNet base model in" in capsys.readouterr().err
    assert not refused.exists()


def test_base_run_at_a_constant_rate_resumes_with_a_cooldown(tmp_path, trained, capsys):
    import shutil

    run = tmp_path / "base"
    shutil.copytree(trained / "base", run)  # 2 steps at a constant rate
    config = json.loads((run / "config.json").read_text())
    config["output_dir"] = str(run)
    (run / "config.json").write_text(json.dumps(config))
    common = ["train", "base", "--output-dir", str(run), "--channels", "8", "16", *SMALL]
    assert main([*common, "--steps", "4", "--cooldown-steps", "2"]) == 0
    rates = [json.loads(line)["lr"] for line in (run / "log.jsonl").read_text().splitlines()]
    warmup = [1e-3 * (step + 1) / 200 for step in range(4)]
    # The rate each step used: warm-up, and over the last 2 steps a linear decay (x 2/2, x 1/2) toward 0.
    assert rates == pytest.approx([warmup[0], warmup[1], warmup[2], warmup[3] * 1 / 2])
    # Moving the cooldown to where the run has already been is refused, with what to do instead.
    assert main([*common, "--steps", "6", "--cooldown-steps", "2"]) == 2
    assert "Cannot resume" in capsys.readouterr().err
    assert main([*common, "--steps", "6", "--cooldown-steps", "7"]) == 2
    assert "--cooldown-steps 7 does not fit in --steps 6" in capsys.readouterr().err


@pytest.mark.slow
def test_refiner_training_exports_a_refiner_the_pipeline_loads(tmp_path, trained, photo_path):
    run = tmp_path / "refiner"
    assert main(["train", "refiner", "--output-dir", str(run), "--autoencoder", str(trained / "ae" / "autoencoder"),
                 "--base", str(trained / "base" / "base"), "--unet-preset", "tiny", "--steps", "2", *SMALL]) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(0.0 <= entry["kept_patches"] <= 1.0 for entry in log)
    description = json.loads((run / "refiner" / "betterdepth_refiner.json").read_text())["description"]
    assert description.endswith("(2 steps, base base/base)")  # the base's run folder, not this machine's path
    out = tmp_path / "out"
    assert main(["estimate", str(photo_path), "-o", str(out), "--base", str(trained / "base" / "base"),
                 "--refiner", str(run / "refiner"), "-q"]) == 0
    assert (out / "photo_disparity.npy").exists()


@pytest.mark.slow
@pytest.mark.parametrize("base", ["simulated", "simulated:varied"])
def test_refiner_training_with_the_simulated_base_logs_kept_patches(tmp_path, trained, base):
    run = tmp_path / "simulated"
    assert main(["train", "refiner", "--output-dir", str(run), "--autoencoder", str(trained / "ae" / "autoencoder"),
                 "--base", base, "--unet-preset", "tiny", "--steps", "1", "--eta", "0.3", *SMALL]) == 0
    entry = json.loads((run / "log.jsonl").read_text().splitlines()[0])
    assert 0.0 < entry["kept_patches"] <= 1.0 and entry["loss"] > 0


def test_a_decoded_gradient_loss_is_logged_and_changes_the_update(tmp_path, trained):
    """--decoded-gradient-weight: the logged loss gains the weighted decoded-gradient term, and the U-Net's
    update differs from the paper's loss alone (same seed, same batches); weight 0 logs no such term."""
    common = ["train", "refiner", "--autoencoder", str(trained / "ae" / "autoencoder"), "--base", "simulated",
              "--unet-preset", "tiny", "--steps", "1", "--eta", "0.3", "--ema-decay", "0", "--learning-rate", "1e-2",
              *SMALL]
    assert main([*common, "--output-dir", str(tmp_path / "plain")]) == 0
    assert main([*common, "--output-dir", str(tmp_path / "decoded"), "--decoded-gradient-weight", "10"]) == 0
    plain = json.loads((tmp_path / "plain" / "log.jsonl").read_text().splitlines()[0])
    decoded = json.loads((tmp_path / "decoded" / "log.jsonl").read_text().splitlines()[0])
    assert "decoded_gradient" not in plain and decoded["decoded_gradient"] > 0
    assert decoded["loss"] == pytest.approx(plain["loss"] + 10 * decoded["decoded_gradient"], rel=1e-4)
    before, after = _weights(tmp_path / "plain" / "refiner" / "unet"), _weights(tmp_path / "decoded" / "refiner" / "unet")
    assert any(not torch.equal(before[name], after[name]) for name in before)


def test_refiner_training_refuses_an_unknown_simulated_base(tmp_path, trained, capsys):
    assert main(["train", "refiner", "--output-dir", str(tmp_path / "run"), "--autoencoder",
                 str(trained / "ae" / "autoencoder"), "--base", "simulated:sharp", "--unet-preset", "tiny",
                 "--steps", "1", *SMALL]) == 2
    assert "Unknown simulated base 'simulated:sharp'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # so the corrected command is not refused as a changed run


@pytest.mark.slow
def test_ablation_without_conditioning_trains_a_two_input_unet(tmp_path, trained):
    from betterdepth_engine.models.refiner import DepthRefiner

    run = tmp_path / "no_conditioning"
    assert main(["train", "refiner", "--output-dir", str(run), "--autoencoder", str(trained / "ae" / "autoencoder"),
                 "--base", str(trained / "base" / "base"), "--unet-preset", "tiny", "--no-conditioning",
                 "--no-patch-mask", "--steps", "1", *SMALL]) == 0
    assert not DepthRefiner.from_pretrained(run / "refiner").uses_conditioning_channels


@pytest.mark.slow
def test_refiner_fine_tuning_starts_from_the_given_refiner(tmp_path, trained):
    """--init with a trained refiner: the run starts from its weights (learning rate 0 keeps them exactly),
    here against a real base model, which sees whole scenes before the crop."""
    first = tmp_path / "first"
    common = ["train", "refiner", "--base", str(trained / "base" / "base"), "--unet-preset", "tiny", *SMALL]
    assert main([*common, "--output-dir", str(first), "--autoencoder", str(trained / "ae" / "autoencoder"),
                 "--steps", "1"]) == 0
    tuned = tmp_path / "tuned"
    assert main([*common, "--output-dir", str(tuned), "--init", str(first / "refiner"), "--learning-rate", "0",
                 "--no-patch-mask", "--crop-size", "32", "--steps", "2"]) == 0
    expected, actual = _weights(first / "refiner" / "unet"), _weights(tuned / "refiner" / "unet")
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    log = [json.loads(line) for line in (tuned / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2] and all(entry["loss"] > 0 for entry in log)


def test_resuming_with_other_settings_is_refused(tmp_path, trained):
    with pytest.raises(BetterDepthError, match="different settings"):
        from betterdepth_engine.train.base import BaseTrainingSettings, train_base

        config = json.loads((trained / "base" / "config.json").read_text())
        config.pop("trainer")
        train_base(BaseTrainingSettings(**{**config, "channels": (8, 32)}))


@pytest.mark.slow
def test_refiner_training_on_cached_crops_resumes_exactly(tmp_path, trained):
    from betterdepth_engine.data.cache import write_scene_cache

    cache = write_scene_cache(tmp_path / "cache", "train", 8, 64, 64, workers=0)
    common = ["train", "refiner", "--autoencoder", str(trained / "ae" / "autoencoder"), "--base", "simulated",
              "--unet-preset", "tiny", "--scene-cache", str(cache), "--crop-size", "32", *SMALL]
    _assert_refiner_resumes_exactly(common, tmp_path, steps=3)


@pytest.mark.slow
def test_refiner_training_with_a_second_base_mixes_them_and_resumes_exactly(tmp_path, trained):
    common = ["train", "refiner", "--autoencoder", str(trained / "ae" / "autoencoder"), "--base", "simulated:varied",
              "--second-base", str(trained / "base" / "base"), "--unet-preset", "tiny", "--crop-size", "32",
              "--seed", "1", *SMALL]
    _assert_refiner_resumes_exactly(common, tmp_path, steps=4)
    log = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert [entry["second_base"] for entry in log] == [0.0, 0.0, 1.0, 1.0]  # seed 1: the resume switches bases


def test_a_second_base_share_outside_0_1_is_refused(tmp_path, trained, capsys):
    assert main(["train", "refiner", "--output-dir", str(tmp_path / "run"), "--autoencoder",
                 str(trained / "ae" / "autoencoder"), "--second-base", "simulated:mild", "--second-base-share", "1.5",
                 "--unet-preset", "tiny", "--steps", "1", *SMALL]) == 2
    assert "--second-base-share must be in [0, 1], not 1.5" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_refiner_learning_corrections_starts_from_the_given_refiner_and_resumes_exactly(tmp_path, trained):
    """--predict-correction from a refiner of the target: every weight is kept but the output layer, which starts
    at zero (learning rate 0 keeps it there); the exported refiner predicts corrections, and a run that goes on
    from it (no flag needed) resumes exactly."""
    from betterdepth_engine.models.refiner import DepthRefiner

    first = tmp_path / "first"
    common = ["train", "refiner", "--base", "simulated", "--unet-preset", "tiny", "--crop-size", "32", *SMALL]
    assert main([*common, "--output-dir", str(first), "--autoencoder", str(trained / "ae" / "autoencoder"),
                 "--steps", "1"]) == 0
    converted = tmp_path / "converted"
    assert main([*common, "--output-dir", str(converted), "--init", str(first / "refiner"), "--predict-correction",
                 "--learning-rate", "0", "--steps", "1"]) == 0
    config = DepthRefiner.from_pretrained(converted / "refiner").config
    assert config.predicts_correction and config.description.endswith("(1 steps, base simulated, predicting corrections)")
    before, after = _weights(first / "refiner" / "unet"), _weights(converted / "refiner" / "unet")
    zeroed = {"conv_out.weight", "conv_out.bias"}
    assert all(torch.equal(before[name], after[name]) for name in before if name not in zeroed)
    assert all(torch.count_nonzero(after[name]) == 0 for name in zeroed)
    _assert_refiner_resumes_exactly([*common, "--init", str(converted / "refiner")], tmp_path, steps=3)
    assert DepthRefiner.from_pretrained(tmp_path / "straight" / "refiner").config.predicts_correction


def test_learning_corrections_without_conditioning_is_refused(tmp_path, trained, capsys):
    assert main(["train", "refiner", "--output-dir", str(tmp_path / "run"), "--autoencoder",
                 str(trained / "ae" / "autoencoder"), "--predict-correction", "--no-conditioning",
                 "--unet-preset", "tiny", "--steps", "1", *SMALL]) == 2
    assert "--predict-correction needs the conditioning input" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_run_resumes_when_the_trainer_gained_a_setting_since(tmp_path, trained):
    """A run folder written before a setting existed: the setting reads as its default, not as a change."""
    import shutil

    from betterdepth_engine.train.base import BaseTrainingSettings, train_base

    run = tmp_path / "base"
    shutil.copytree(trained / "base", run)
    config = json.loads((run / "config.json").read_text())
    assert config.pop("init") == ""  # as a run written before `--init` existed
    (run / "config.json").write_text(json.dumps(config))
    config.pop("trainer")
    assert train_base(BaseTrainingSettings(**{**config, "output_dir": str(run)})) == run / "base"
    with pytest.raises(BetterDepthError, match="different settings"):
        train_base(BaseTrainingSettings(**{**config, "output_dir": str(run), "init": str(trained / "base" / "base")}))


def test_autoencoder_trains_on_crops_of_cached_scenes(tmp_path, capsys):
    from betterdepth_engine.data.cache import write_scene_cache

    cache = write_scene_cache(tmp_path / "cache", "train", 4, 64, 64, workers=0)
    run = tmp_path / "ae"
    assert main(["train", "autoencoder", "--output-dir", str(run), "--preset", "tiny", "--steps", "1",
                 "--scene-cache", str(cache), "--crop-size", "32", *SMALL]) == 0
    assert (run / "autoencoder" / "config.json").exists()
    assert main(["train", "autoencoder", "--output-dir", str(tmp_path / "bad"), "--preset", "tiny", "--steps", "1",
                 "--scene-cache", str(cache), "--crop-size", "72", *SMALL]) == 2
    assert "Crop size 72 does not fit 64x64" in capsys.readouterr().err


def test_decoder_fine_tuning_keeps_the_latent_space(tmp_path, trained, capsys):
    from diffusers import AutoencoderKL

    original = trained / "ae" / "autoencoder"
    run = tmp_path / "decoder"
    assert main(["train", "autoencoder", "--output-dir", str(run), "--fine-tune-decoder", str(original),
                 "--steps", "2", "--learning-rate", "1e-2", *SMALL]) == 0
    before, after = _weights(original), _weights(run / "autoencoder")
    latent_space = [name for name in before if name.startswith(("encoder.", "quant_conv."))]
    decoder = [name for name in before if name.startswith(("decoder.", "post_quant_conv."))]
    assert latent_space and decoder and len(latent_space) + len(decoder) == len(before)
    assert all(torch.equal(before[name], after[name]) for name in latent_space)
    assert any(not torch.equal(before[name], after[name]) for name in decoder)
    # The refiner trained in this latent space reads its scale from the VAE config: it must not move.
    assert (AutoencoderKL.load_config(run / "autoencoder")["scaling_factor"]
            == AutoencoderKL.load_config(original)["scaling_factor"])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert "l1_depth" in log[-1] and "l1_image" not in log[-1]  # depth maps only

    assert main(["train", "autoencoder", "--output-dir", str(tmp_path / "bad"), "--fine-tune-decoder",
                 str(tmp_path / "nowhere"), "--steps", "1", *SMALL]) == 2
    assert "No autoencoder in" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_export_with_a_fine_tuned_decoder_checks_the_latent_space(tmp_path, trained):
    import subprocess
    import sys
    from pathlib import Path

    from betterdepth_engine.models.refiner import DepthRefiner

    repository = Path(__file__).resolve().parents[2]
    refiner_run, decoder_run, other_run = tmp_path / "refiner", tmp_path / "decoder", tmp_path / "other"
    assert main(["train", "refiner", "--output-dir", str(refiner_run), "--autoencoder",
                 str(trained / "ae" / "autoencoder"), "--base", "simulated", "--unet-preset", "tiny", "--steps", "1",
                 *SMALL]) == 0
    assert main(["train", "autoencoder", "--output-dir", str(decoder_run), "--fine-tune-decoder",
                 str(trained / "ae" / "autoencoder"), "--steps", "1", "--learning-rate", "1e-2", *SMALL]) == 0
    assert main(["train", "autoencoder", "--output-dir", str(other_run), "--preset", "tiny", "--seed", "1",
                 "--steps", "1", *SMALL]) == 0
    base_run = tmp_path / "base"  # a fine-tuned base: the export records the run it started from too
    assert main(["train", "base", "--output-dir", str(base_run), "--init", str(trained / "base" / "base"),
                 "--channels", "8", "16", "--steps", "1", *SMALL]) == 0

    def export(decoder, output):
        return subprocess.run([sys.executable, "scripts/export_default_models.py", "--base", str(base_run),
                               "--refiner", str(refiner_run), "--decoder", str(decoder), "--output", str(output),
                               "--denoising-steps", "3", "--processing-resolution", "48", "--guard", "0.08,1,1"],
                              cwd=repository, capture_output=True, text=True)

    exported = export(decoder_run, tmp_path / "weights")
    assert exported.returncode == 0, exported.stderr
    shipped = _weights(tmp_path / "weights" / "refiner" / "vae")
    tuned = _weights(decoder_run / "autoencoder")
    assert all(torch.equal(shipped[name], tuned[name].half()) for name in tuned)
    assert all(weight.dtype == torch.float16 for weight in _weights(tmp_path / "weights" / "refiner" / "unet").values())
    exported_refiner = DepthRefiner.from_pretrained(tmp_path / "weights" / "refiner")
    assert exported_refiner.uses_conditioning_channels
    assert (exported_refiner.config.default_denoising_steps, exported_refiner.config.default_processing_resolution) \
        == (3, 48)  # inference defaults chosen at export
    config = exported_refiner.config
    assert (config.guard_threshold, config.guard_radius, config.guard_median_radius) == (0.08, 1, 1)
    records = json.loads((tmp_path / "weights" / "training_runs.json").read_text())
    assert records["autoencoder_decoder"]["settings"]["fine_tune_decoder"] == str(trained / "ae" / "autoencoder")
    assert "autoencoder_decoder_init_1" not in records  # the autoencoder it started from is recorded once
    assert records["base"]["settings"]["init"] == str(trained / "base" / "base")
    assert records["base_init_1"]["settings"]["output_dir"] == str(trained / "base")

    refused = export(other_run, tmp_path / "mismatch")
    assert refused.returncode != 0 and "not the one the refiner was trained with" in refused.stderr
    assert not (tmp_path / "mismatch").exists()


def test_autoencoder_ceiling_scores_ground_truth_through_each_autoencoder(tmp_path, trained):
    import subprocess
    import sys
    from pathlib import Path

    from PIL import Image

    repository = Path(__file__).resolve().parents[2]
    autoencoder = trained / "ae" / "autoencoder"
    figure = tmp_path / "figure.jpg"
    result = subprocess.run([sys.executable, "scripts/autoencoder_ceiling.py", str(autoencoder), str(autoencoder),
                             "--scenes", "2", "--figure", str(figure)], cwd=repository, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(f"| {autoencoder} |")]
    assert len(rows) == 2 and rows[0] == rows[1]  # the same autoencoder twice scores the same
    abs_rel = float(rows[0].split("|")[2])
    assert 0 < abs_rel < 100  # a 2-step autoencoder is poor, but the score is a real AbsRel in percent
    assert Image.open(figure).size == (3 * 320, 2 * 240)  # ground truth | two reconstructions, one row per scene
