"""Damaged voices and bad settings give one clear message naming the file or the field (issue 11, finding 8).

A voice with NaN weights, a config whose sample rate is 0 or whose sizes are
nonsense, a G_ checkpoint from a diverged training, and NaN/inf conversion
settings: each is refused where it is read, as :class:`ModelFileError` or
``ValueError``, and through the CLI as one ``error:`` line without a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from infer.checkpoints import TrainCheckpoint, count_non_finite, read_checkpoint, write_checkpoint
from infer.ckpt.extract import extract_voice
from infer.models.config import SynthesizerConfig, preset, tiny_config
from infer.params import ConvertParams
from infer.safe_load import ModelFileError
from infer.testing.synth import tiny_synthesizer
from infer.testing.voice import save_tiny_voice
from infer.voice import load_voice
from tests.helpers import Installation, installation, run_python  # noqa: F401  (fixture)


def derived_voice(good: Path, target: Path, change: Callable[[dict], None]) -> Path:
    """Copy the small model ``good`` to ``target`` with ``change`` applied to its loaded dict."""
    model = torch.load(good, map_location="cpu", weights_only=True)
    model["weight"] = {k: v.clone() for k, v in model["weight"].items()}
    model["config"] = list(model["config"])
    change(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model, target)
    return target


def poison(model: dict, count: int = 3, value: float = math.nan) -> None:
    """Set ``count`` values of the voice's output layer to ``value``."""
    model["weight"]["dec.conv_post.weight"].view(-1)[:count] = value


def config_item(position: int, value: object) -> Callable[[dict], None]:
    def change(model: dict) -> None:
        model["config"][position] = value

    return change


@pytest.fixture(scope="module")
def good_voice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_voice(tmp_path_factory.mktemp("weights") / "good.pth", feature_dim=32)


# --- NaN weights ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_voice_with_non_finite_weights_is_named_on_load(good_voice, tmp_path, value):
    damaged = derived_voice(good_voice, tmp_path / "weights" / "x.pth", lambda m: poison(m, 3, value))
    total = sum(v.numel() for v in torch.load(good_voice, weights_only=True)["weight"].values())
    with pytest.raises(ModelFileError) as caught:
        load_voice(damaged)
    message = str(caught.value)
    assert f"'{damaged}' has NaN or infinite weights (3 of {total} values)" in message
    assert "diverged training" in message and "Extract it again" in message


def test_huge_but_finite_weights_are_not_called_nan(good_voice, tmp_path):
    """The fast float32 sum overflows here; the exact count must clear the file."""
    big = torch.full((4, 100), 3e38)
    assert count_non_finite({"w": big, "steps": torch.tensor([3])}) == (0, 400)
    assert count_non_finite({"w": big.clone().index_fill_(1, torch.tensor([7]), math.nan)}) == (4, 400)


def test_a_diverged_g_checkpoint_is_refused_for_extraction(tmp_path):
    model = tiny_synthesizer("v2", 40000, True, 0, feature_dim=32)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["dec.conv_post.weight"].view(-1)[:5] = math.nan
    checkpoint = write_checkpoint(TrainCheckpoint(state, 9), tmp_path / "exp" / "G_9.pth")
    with pytest.raises(ModelFileError, match=r"G_9.pth' has NaN or infinite weights \(5 of"):
        read_checkpoint(checkpoint)
    with pytest.raises(ModelFileError, match="earlier checkpoint"):
        extract_voice(checkpoint, "out", weights_dir=tmp_path / "weights")
    assert not (tmp_path / "weights" / "out.pth").exists()


# --- config: sample rate and sizes ---------------------------------------------------------------------------


BAD_CONFIGS = {
    "sr_zero": (config_item(-1, 0), "sample_rate must be 32000, 40000 or 48000 (Hz), got 0"),
    "sr_tag_zero": (config_item(-1, "0k"), "sample_rate (config item 17) is unusable: '0k'"),
    "sr_odd": (config_item(-1, 44100), "sample_rate must be 32000, 40000 or 48000 (Hz), got 44100"),
    "sr_negative": (config_item(-1, -40000), "got -40000"),
    "heads_zero": (config_item(5, 0), "n_heads must be a positive whole number, got 0"),
    "upsample_zero": (config_item(12, [10, 0, 2, 2]), "upsample_rates must be positive whole numbers"),
    "channels_nan": (config_item(13, math.nan), "upsample_initial_channel (config item 13) is unusable: nan"),
    "kernel_text": (config_item(7, "three"), "kernel_size (config item 7) is unusable: 'three'"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_a_bad_config_field_is_named_with_the_file(good_voice, tmp_path, case):
    change, expected = BAD_CONFIGS[case]
    damaged = derived_voice(good_voice, tmp_path / "weights" / f"{case}.pth", change)
    with pytest.raises(ModelFileError) as caught:
        load_voice(damaged)
    message = str(caught.value)
    assert message.startswith(f"'{damaged}' has an unusable model config: ")
    assert expected in message and "extract it again" in message


def test_a_17_item_config_takes_its_rate_from_sr_and_checks_it(good_voice, tmp_path):
    def drop_rate(model: dict) -> None:
        model["config"].pop()
        model["sr"] = "0k"

    with pytest.raises(ModelFileError, match=r"sample_rate \(config item 17\) is unusable: '0k'"):
        load_voice(derived_voice(good_voice, tmp_path / "short.pth", drop_rate))


@pytest.mark.parametrize(
    ("version", "rate"), [("v1", 32000), ("v1", 40000), ("v1", 48000), ("v2", 32000), ("v2", 48000)]
)
def test_every_rvc_preset_passes_the_checks(version, rate):
    assert preset(version, rate).sample_rate == rate
    assert tiny_config(version, rate).sample_rate == rate


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"hidden_channels": 0}, "hidden_channels"),
        ({"gin_channels": -8}, "gin_channels"),
        ({"p_dropout": 1.5}, "p_dropout"),
    ],
)
def test_the_config_names_the_bad_size(changes, field):
    with pytest.raises(ValueError, match=f"^{field} must be"):
        tiny_config().with_(**changes)


def test_from_rvc_list_round_trips():
    config = preset("v2", 48000)
    assert SynthesizerConfig.from_rvc_list(config.to_rvc_list(), feature_dim=768, use_f0=True) == config


# --- conversion settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("index_rate", math.nan, "index_rate must be a number between 0 and 1, got nan"),
        ("key", math.inf, "key must be a number between -48 and 48, got inf"),
        ("rms_mix_rate", -math.inf, "rms_mix_rate must be a number between 0 and 1, got -inf"),
        ("protect", math.nan, "protect must be a number between 0 and 0.5, got nan"),
        ("noise_scale", math.nan, "noise_scale must be a number (0 or more), got nan"),
        ("filter_radius", math.nan, "filter_radius must be a whole number between 0 and 32, got nan"),
        ("speaker_id", math.inf, "speaker_id must be a whole number (0 or more), got inf"),
        ("resample_sr", math.nan, "resample_sr must be a whole number (0 or more), got nan"),
        ("seed", math.nan, "seed must be a whole number, got nan"),
        ("key", "high", "key must be a number between -48 and 48, got 'high'"),
    ],
)
def test_non_finite_settings_are_refused_by_name(field, value, expected):
    with pytest.raises(ValueError) as caught:
        ConvertParams(**{field: value})
    assert str(caught.value) == expected


def test_good_settings_still_pass():
    ConvertParams(key=np.float32(-3.5), index_rate=1, speaker_id=np.int64(2), seed=7, resample_sr=44100)


# --- through the CLI -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("input") / "tone.wav"
    seconds = np.arange(16000) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * seconds)).astype(np.float32), 16000)
    return path


def assert_one_error_line(result, *needles: str) -> None:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.mark.parametrize(
    ("name", "change", "needle"),
    [
        ("nanvoice", poison, "has NaN or infinite weights"),
        ("sr0", config_item(-1, 0), "sample_rate must be 32000, 40000 or 48000 (Hz), got 0"),
    ],
)
def test_cli_convert_names_the_damaged_voice(installation: Installation, tone, tmp_path, name, change, needle):  # noqa: F811
    voice = derived_voice(installation.voices["alice"], installation.weights_dir / f"{name}.pth", change)
    output = tmp_path / "out.wav"
    args = ["-m", "infer", "convert", "--voice", name, "--input", str(tone), "--output", str(output)]
    result = run_python([*args, "--index", "none", "--f0-method", "pm"], installation.env(), timeout=300)
    assert_one_error_line(result, str(voice), needle)
    assert not output.exists()


def test_cli_info_names_the_bad_sample_rate(installation: Installation, tmp_path):  # noqa: F811
    voice = derived_voice(installation.voices["alice"], tmp_path / "sr0.pth", config_item(-1, 0))
    result = run_python(["-m", "infer", "info", str(voice)], installation.env(), timeout=120)
    assert_one_error_line(result, str(voice), "sample_rate must be 32000, 40000 or 48000 (Hz), got 0")
