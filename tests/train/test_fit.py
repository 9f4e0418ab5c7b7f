"""``fit`` on a tiny experiment (CPU): checkpoints in RVC's format, voice models, logs, options."""

from __future__ import annotations

import ast
import json
import shutil

import pytest
import torch

from infer import load_voice
from infer.checkpoints import read_checkpoint, read_small_model
from infer.models.discriminators import build_discriminator
from infer.models.synthesizer import Synthesizer
from infer.safe_load import load_torch_file
from tests.conftest import fixture_path
from tests.train.conftest import TINY_DISC, make_experiment, tiny_options
from train.experiment import ExperimentConfig
from train.loop import fit

EPOCHS = 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One 2-epoch run shared by the checks below (3 steps per epoch)."""
    root = tmp_path_factory.mktemp("fit")
    exp = make_experiment(root)
    calls = []
    result = fit(exp, tiny_options(root, save_small_model_every_save=True), progress=lambda f, m: calls.append((f, m)))
    return exp, root, result, calls


def test_result_and_progress(trained):
    exp, root, result, calls = trained
    assert (result.start_epoch, result.epoch, result.global_step, result.stopped) == (1, EPOCHS, 6, False)
    assert [pair.epoch for pair in result.checkpoints] == [1, 2]
    assert [p.name for p in result.small_models] == ["tiny_e1_s3.pth", "tiny_e2_s6.pth"]
    assert result.final_model == root / "weights" / "tiny.pth"
    fractions = [f for f, _ in calls]
    assert len(calls) == 6 and fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert calls[0][1] == "epoch 1/2, step 1"


def test_checkpoints_have_rvc_format_and_load_strictly(trained):
    exp, _, result, _ = trained
    config = ExperimentConfig.load(exp / "config.json")
    assert sorted(p.name for p in exp.glob("[GD]_*.pth")) == ["D_3.pth", "D_6.pth", "G_3.pth", "G_6.pth"]
    for role, model in (
        ("G", Synthesizer.from_config(config.model)),
        ("D", build_discriminator("v2", channel_divisor_s=TINY_DISC[0], channel_divisor_p=TINY_DISC[1])),
    ):
        raw = torch.load(exp / f"{role}_6.pth", map_location="cpu", weights_only=True)
        assert list(raw)[:4] == ["model", "iteration", "optimizer", "learning_rate"]
        assert raw["iteration"] == 2 and raw["learning_rate"] == 1e-4  # the config's rate, as RVC writes it
        # the reference loads with strict keys and steps AdamW by parameter index (fixture README §B)
        model.load_state_dict(raw["model"], strict=True)
        assert list(raw["model"]) == list(model.state_dict())
        assert len(raw["optimizer"]["state"]) == len(list(model.parameters()))
        assert raw["optimizer"]["param_groups"][0]["initial_lr"] == 1e-4
        ours = read_checkpoint(exp / f"{role}_6.pth")
        assert ours.iteration == 2 and ours.kind == ("generator" if role == "G" else "discriminator")
        assert ours.extra["rvc_studio"]["global_step"] == 6
    assert any(k.startswith("enc_q.") for k in load_torch_file(exp / "G_3.pth")["model"])


def test_voice_models_load_in_both_formats(trained):
    exp, root, result, _ = trained
    config = ExperimentConfig.load(exp / "config.json")
    voice = load_voice(result.final_model)
    assert (voice.sample_rate, voice.version, voice.use_f0, voice.info) == (32000, "v2", True, "2epoch")
    stats = voice.metadata["f0_stats"]
    assert 140 < stats["p5"] < stats["median"] < stats["p95"] < 221
    assert voice.metadata["epochs"] == 2 and voice.metadata["content_encoder"] == "hubert_base"
    assert read_small_model(result.small_models[0]).info == "1epoch"
    # the reference's loader (fixture README §A): cls(*config), drop enc_q, load_state_dict(strict=False)
    cpt = torch.load(result.final_model, map_location="cpu", weights_only=True)
    assert list(cpt)[:6] == ["weight", "config", "info", "sr", "f0", "version"]
    assert (cpt["sr"], cpt["f0"], cpt["version"], cpt["config"][1], cpt["config"][-1]) == ("32k", 1, "v2", 32, 32000)
    assert all(v.dtype == torch.float16 for v in cpt["weight"].values())
    cpt["config"][-3] = cpt["weight"]["emb_g.weight"].shape[0]
    net_g = Synthesizer(config.model.feature_dim, True, *cpt["config"], is_half=False)
    del net_g.enc_q
    missing, unexpected = net_g.load_state_dict(cpt["weight"], strict=False)
    assert not missing and not unexpected


def test_logs_metrics_and_tensorboard(trained):
    exp, _, result, _ = trained
    lines = (exp / "train.log").read_text(encoding="utf-8").splitlines()
    first = lines[0].split("\t")
    assert len(first) == 4 and first[1] == "tiny" and first[2] == "INFO"
    hps = ast.literal_eval(first[3])  # what RVC's ckpt tab evaluates
    assert (hps["sample_rate"], hps["if_f0"], hps["version"], hps["total_epoch"]) == ("32k", 1, "v2", 2)
    text = "\n".join(lines)
    for expected in (
        "Train Epoch: 1 [0%]",
        "loss_disc=",
        "====> Epoch: 2 [",
        "Saving model and optimizer state at epoch 2 to",
        "saving ckpt tiny_e1:Success.",
        "Training is done. The program is closed.",
        "saving final ckpt:Success.",
    ):
        assert expected in text, expected
    records = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["step"] for r in steps] == list(range(6)) and [r["epoch"] for r in epochs] == [1, 2]
    for record in records:
        assert set(record) >= {
            "epoch",
            "step",
            "loss/g/total",
            "loss/d/total",
            "loss/g/mel",
            "loss/g/kl",
            "loss/g/fm",
            "lr",
            "grad_norm_g",
            "grad_norm_d",
            "time",
        }
    assert epochs[1]["lr"] == pytest.approx(1e-4 * 0.999875)
    events = list(exp.glob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(exp)).Reload().Tags()
    assert {"loss/g/total", "loss/d/total", "learning_rate", "grad_norm_g", "loss/g/mel", "loss/d_r/0"} <= set(
        tags["scalars"]
    )
    assert "slice/mel_gen" in tags["images"]


def test_latest_only_names_and_spectrogram_cache(tmp_path):
    exp = make_experiment(tmp_path, seconds=(0.9, 1.0), mute=False)
    result = fit(exp, tiny_options(tmp_path, total_epochs=2, save_latest_only=True))
    assert sorted(p.name for p in exp.glob("[GD]_*.pth")) == ["D_2333333.pth", "G_2333333.pth"]
    assert read_checkpoint(exp / "G_2333333.pth").iteration == 2 == result.epoch
    assert len(list((exp / "0_gt_wavs").glob("*.spec.pt"))) == 2


def test_without_pitch(tmp_path):
    exp = make_experiment(tmp_path, seconds=(0.9, 1.0), use_f0=False, mute=False)
    result = fit(exp, tiny_options(tmp_path, total_epochs=1, num_workers=1))  # also: a DataLoader worker
    voice = load_voice(result.final_model)
    assert not voice.use_f0 and voice.metadata["f0_stats"] is None


def test_missing_filelist_is_explained(tmp_path):
    exp = make_experiment(tmp_path, seconds=(0.9,), mute=False)
    (exp / "filelist.txt").unlink()
    with pytest.raises(ValueError, match="filelist"):
        fit(exp, tiny_options(tmp_path))
    with pytest.raises(ValueError, match="save_every"):
        tiny_options(tmp_path, save_every=0)


def test_command_line_reports_errors(tmp_path, capsys):
    from train.fit_main import build_parser, main, options_from_args

    assert main(["--exp-dir", str(tmp_path / "missing"), "--device", "cpu"]) == 1
    assert "config.json" in capsys.readouterr().err
    args = build_parser().parse_args(["--exp-dir", "x", "--epochs", "7", "--latest-only", "--disc-divisors", "4", "16"])
    options = options_from_args(args)
    assert (options.total_epochs, options.save_latest_only, options.discriminator_divisors) == (7, True, (4, 16))


@pytest.mark.compat
def test_resumes_a_checkpoint_written_by_rvc(tmp_path):
    """The reference trainer's (reduced) G_2333333/D_2333333 resume at epoch 2 with their optimizer state."""
    ckpt_dir = fixture_path("rvc-reference", "train_ckpt", "v2_f0_40k_reduced")
    meta = json.loads((ckpt_dir / "meta.json").read_text())
    exp = make_experiment(
        tmp_path,
        "ref",
        seconds=(0.8,),
        mute=False,
        sample_rate=40000,
        model_overrides=dict(meta["reduced_g_overrides"], feature_dim=768),
        batch_size=1,
    )
    for name in ("G_2333333.pth", "D_2333333.pth"):
        shutil.copy(ckpt_dir / name, exp / name)
    divisors = meta["reduced_d_channel_divisors"]
    result = fit(
        exp,
        tiny_options(
            tmp_path,
            total_epochs=2,
            save_latest_only=True,
            discriminator_divisors=(divisors["Conv1d"], divisors["Conv2d"]),
        ),
    )
    assert (result.start_epoch, result.epoch) == (2, 2)
    log = (exp / "train.log").read_text()
    assert "not in the checkpoint" not in log and "mismatch" not in log and "not restored" not in log
    saved = torch.load(exp / "G_2333333.pth", map_location="cpu", weights_only=True)
    reference = torch.load(ckpt_dir / "G_2333333.pth", map_location="cpu", weights_only=True)
    assert saved["iteration"] == 2 and list(saved["model"]) == list(reference["model"])
    step = saved["optimizer"]["state"][0]["step"]
    assert float(step) == float(reference["optimizer"]["state"][0]["step"]) + 1  # AdamW continued, not restarted
