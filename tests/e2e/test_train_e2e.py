"""Training end to end on the CPU: espeak-ng speech → ``python -m train all`` → voice + index → conversion.

The recordings are made by espeak-ng (the tests skip without it) in a folder
whose path has spaces and non-ASCII characters, and the experiment's name has
them too.  The content encoder and RMVPE are the tiny random models of
``tests.helpers``; the voice is trained with tiny widths for two epochs, so the
default test takes a minute or two on two cores.  ``pytest -m slow`` adds a
longer run: v1 at 40 kHz with RMVPE, two training processes under torchrun.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import infer
from infer.audio import audio_info
from infer.index_pairing import find_index_for_voice
from infer.models.synthesizer import Synthesizer
from tests import helpers
from tests.conftest import shared_dir
from tests.helpers import HUBERT_EMBED_DIM, HUBERT_FINAL_DIM, Installation, check_output, make_speech, run_python
from tests.train.conftest import TINY_DISC, TINY_MODEL
from train.commands import AllRequest
from train.experiment import ExperimentConfig

installation = helpers.installation  # module-scoped fixture from tests/helpers.py

PARAGRAPHS = [
    "The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single step.",
    "Every morning the baker opens his shop before sunrise, and the smell of fresh bread fills the quiet street.",
    "Children walk to school in small groups, talking about games, homework and the weather.",
    "In the afternoon the market square is busy with people buying fruit, vegetables and flowers.",
    "When the evening comes, the lights of the harbour shine on the water and the boats return home.",
    "She asked whether the train would leave on time, but nobody at the station seemed to know.",
]
REFERENCE_SMALL_MODEL = ("fixtures", "rvc-reference", "train_ckpt", "v2_f0_40k_reduced", "savee_small_model.pth")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 40 s of speech in six takes of two voices, under 'my recordings ü/'."""
    folder = tmp_path_factory.mktemp("e2e train") / "my recordings ü"
    for number, text in enumerate(PARAGRAPHS):
        make_speech(folder / f"take {number}.wav", text, voice="en" if number % 2 else "en+m3", speed=150)
    return folder


def _tiny(feature_dim: int, sample_rate: int) -> dict:
    return {
        "model": dict(TINY_MODEL, feature_dim=feature_dim),
        "train": {"segment_size": 8 * sample_rate // 100, "log_interval": 4},
    }


def _train(setup: Installation, recordings: Path, name: str, **settings) -> tuple[AllRequest, list[dict], str]:
    request = AllRequest(
        name=name,
        dataset=recordings,
        logs_dir=setup.logs_dir,
        weights_dir=setup.weights_dir,
        assets_dir=setup.assets_dir,
        processes=1,
        device="cpu",
        num_workers=0,
        threads=2,
        save_every=1,
        batch_size=4,
        disc_divisors=TINY_DISC,
        **settings,
    )
    run = run_python(request.argv(json_progress=True)[1:], env=setup.env(), timeout=900)
    assert run.returncode == 0, run.stderr[-6000:]
    records = [json.loads(line) for line in run.stdout.splitlines()]  # stdout holds JSON lines only
    return request, records, run.stderr


def _check_progress(records: list[dict]) -> dict:
    fractions = [r["progress"] for r in records]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    steps = {r["message"].split(":")[0] for r in records[:-2]}
    assert {"preprocess", "extract", "fit", "index"} <= steps
    final = records[-1]
    assert final["step"] == "all" and final["stopped"] is False
    return final["result"]


def _check_reference_format(path: Path, config: ExperimentConfig) -> None:
    """RVC's loader (fixture README §A): key order, config types, fp16 weights, cls(*config) loads them."""
    cpt = torch.load(path, map_location="cpu", weights_only=True)
    assert list(cpt)[:6] == ["weight", "config", "info", "sr", "f0", "version"]
    assert re.fullmatch(r"\d+epoch", cpt["info"]) and cpt["sr"] == config.tag and cpt["version"] == config.version
    assert cpt["f0"] == int(config.use_f0) and type(cpt["f0"]) is int
    spec_channels = config.data.filter_length // 2 + 1
    assert cpt["config"][:2] == [spec_channels, 32] and cpt["config"][-1] == config.sample_rate
    assert all(value.dtype == torch.float16 for value in cpt["weight"].values())
    assert not any("enc_q" in key for key in cpt["weight"])
    reference = shared_dir().joinpath(*REFERENCE_SMALL_MODEL)
    if reference.is_file():  # the reference trainer's own export: same layout and Python types
        ref = torch.load(reference, map_location="cpu", weights_only=True)
        assert list(cpt)[:6] == list(ref)[:6] and len(cpt["config"]) == len(ref["config"]) == 18
        assert [type(v) for v in cpt["config"]] == [type(v) for v in ref["config"]]
        assert [type(cpt[k]) for k in ("info", "sr", "f0", "version")] == [
            type(ref[k]) for k in ("info", "sr", "f0", "version")
        ]
    cpt["config"][-3] = cpt["weight"]["emb_g.weight"].shape[0]
    net_g = Synthesizer(config.model.feature_dim, config.use_f0, *cpt["config"], is_half=False)
    del net_g.enc_q
    missing, unexpected = net_g.load_state_dict(cpt["weight"], strict=False)
    assert not missing and not unexpected


def _convert(setup: Installation, voice: Path, index: Path, source: Path, output: Path, method: str) -> None:
    job = infer.prepare(voice, setup.cache(), infer.ConvertParams(f0_method=method, index_rate=0.75), index=index)
    assert job.index is not None
    infer.convert_file(job, source, output)
    check_output(output, rate=job.voice.sample_rate, seconds=audio_info(source).duration)


def test_one_click_training_makes_a_voice_and_an_index_that_convert(installation, recordings, tmp_path):
    name = "stimme ü"
    request, records, stderr = _train(
        installation,
        recordings,
        name,
        sample_rate="32k",
        f0_method="pm",
        epochs=2,
        config_overrides=_tiny(HUBERT_EMBED_DIM, 32000),
    )
    result = _check_progress(records)
    for command in result["commands"]:  # each step announced its equivalent command
        assert f"$ {command}" in stderr
    assert result["commands"][0] == request.steps()[0].command_line()
    voice_path = installation.weights_dir / f"{name}.pth"
    assert result["fit"]["result"]["final_model"] == str(voice_path) and result["fit"]["result"]["epoch"] == 2
    exp = installation.logs_dir / name
    config = ExperimentConfig.load(exp / "config.json")
    assert (config.sample_rate, config.version, config.use_f0, config.f0_method) == (32000, "v2", True, "pm")
    metrics = [json.loads(line) for line in (exp / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [m["epoch"] for m in metrics if m["kind"] == "epoch"] == [1, 2]

    voice = infer.load_voice(voice_path)
    assert (voice.sample_rate, voice.version, voice.use_f0, voice.info) == (32000, "v2", True, "2epoch")
    assert voice.metadata["f0_method"] == "pm" and voice.metadata["f0_stats"]["median"] > 50
    _check_reference_format(voice_path, config)

    index = Path(result["index"]["report"]["added"])
    assert index.is_file() and index.parent == exp and index.name.endswith(f"_{name}_v2.index")
    assert find_index_for_voice(voice_path, [installation.logs_dir]) == index
    assert Path(result["index"]["report"]["linked"]).is_file()  # the copy in assets/indices
    source = next(recordings.glob("*.wav"))
    _convert(installation, voice_path, index, source, tmp_path / "converted ü.wav", "pm")


@pytest.mark.slow
def test_v1_40k_with_rmvpe_under_torchrun(installation, recordings, tmp_path):
    name = "v1 röst"
    _, records, stderr = _train(
        installation,
        recordings,
        name,
        sample_rate="40k",
        version="v1",
        f0_method="rmvpe",
        epochs=3,
        nproc=2,
        latest_only=True,
        save_small_models=True,
        config_overrides=_tiny(HUBERT_FINAL_DIM, 40000),
    )
    result = _check_progress(records)
    assert "starting 2 training processes" in stderr and result["fit"]["processes"] == 2
    exp = installation.logs_dir / name
    assert sorted(p.name for p in exp.glob("[GD]_*.pth")) == ["D_2333333.pth", "G_2333333.pth"]
    assert len(list(installation.weights_dir.glob(f"{name}_e*_s*.pth"))) == 3
    voice_path = installation.weights_dir / f"{name}.pth"
    voice = infer.load_voice(voice_path)
    assert (voice.sample_rate, voice.version, voice.info, voice.metadata["f0_method"]) == (
        40000,
        "v1",
        "3epoch",
        "rmvpe",
    )
    _check_reference_format(voice_path, ExperimentConfig.load(exp / "config.json"))
    index = Path(result["index"]["report"]["added"])
    _convert(installation, voice_path, index, next(recordings.glob("*.wav")), tmp_path / "out.flac", "rmvpe")
