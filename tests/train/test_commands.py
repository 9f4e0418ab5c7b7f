"""The step requests: argv and command lines that parse back to the same request, validation, ``all``'s parts."""

from __future__ import annotations

import shlex
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from train.__main__ import build_parser
from train.cli.args import request_from_args
from train.commands import (
    REQUESTS,
    AllRequest,
    CheckRequest,
    ExtractRequest,
    FitRequest,
    IndexRequest,
    PreprocessRequest,
    RequestError,
    ReuseRequest,
    gpu_ids,
    quote_command,
)

ODD_DIR = Path('/tmp/my data/ü\'s "takes" $HOME')  # spaces, quotes, non-ASCII, a shell variable

EXAMPLES = [
    PreprocessRequest(
        name="alice ü",
        dataset=ODD_DIR,
        sample_rate="48k",
        version="v1",
        use_f0=False,
        processes=3,
        logs_dir=ODD_DIR / "logs",
        config_overrides={"model": {"n_layers": 1}, "train": {"seed": 7}},
    ),
    CheckRequest(name="alice", logs_dir=Path("logs 2")),
    ExtractRequest(
        name="alice",
        f0_method="harvest",
        processes=2,
        gpus="0-0",
        device="cuda",
        hubert=ODD_DIR / "h.pt",
        rmvpe=Path("r.pt"),
        assets_dir=Path("a"),
        use_f0=True,
    ),
    FitRequest(
        name="alice",
        epochs=7,
        save_every=2,
        batch_size=3,
        latest_only=True,
        save_small_models=True,
        pretrained_g="",
        pretrained_d=str(ODD_DIR / "D_5.pth"),
        gpus="0-1",
        speaker_id=2,
        weights_dir=ODD_DIR,
        precision="fp32",
        num_workers=0,
        threads=1,
        seed=5,
        log_interval=9,
        disc_divisors=(16, 32),
    ),
    FitRequest(name="bob", nproc=2, device="cpu", use_f0=False),
    IndexRequest(name="alice", version="v2", assets_dir=ODD_DIR),
    AllRequest(
        name="alice",
        dataset=ODD_DIR,
        sample_rate="32k",
        f0_method="pm",
        epochs=3,
        gpus="1",
        processes=1,
        config_overrides={"model": {"feature_dim": 32}},
    ),
    ReuseRequest(source="alice", name="alice v1", version="v1", copy=True, logs_dir=ODD_DIR),
]


def _parse(argv: list[str]):
    assert argv[:3] == [sys.executable, "-m", "train"]
    args = build_parser().parse_args(argv[3:])
    return request_from_args(REQUESTS[args.step], args)


@pytest.mark.parametrize("request_", EXAMPLES, ids=lambda r: r.STEP)
def test_argv_parses_back_to_the_same_request(request_):
    argv = request_.argv()
    assert argv[3] == request_.STEP
    assert _parse(argv) == request_
    assert _parse(request_.argv(json_progress=True)) == request_ and request_.argv(json_progress=True)[-1] == (
        "--json-progress"
    )
    assert shlex.split(request_.command_line(windows=False)) == argv  # pastes into bash as the same words


def test_defaults_are_left_out_and_paths_are_normalised():
    request = FitRequest(name="alice", logs_dir="some/logs", epochs=20)
    assert request.argv()[4:] == ["--name", "alice", "--logs-dir", "some/logs"]
    assert request.logs_dir == Path("some/logs")
    assert PreprocessRequest(name="a", dataset="d", sample_rate="40000").sample_rate == "40k"
    assert PreprocessRequest(name="a", dataset="d", sample_rate=48000).argv()[6:8] == ["--sr", "48k"]
    assert ExtractRequest(name="a", use_f0=False).argv()[-1] == "--no-f0"


def test_windows_quoting_keeps_spaces_and_quotes_together():
    line = quote_command(
        ["C:\\Program Files\\py.exe", "-m", "train", "preprocess", "--dataset", 'D:\\my "data"'], windows=True
    )
    assert line == '"C:\\Program Files\\py.exe" -m train preprocess --dataset "D:\\my \\"data\\""'
    assert quote_command(["a b", "c"], windows=False) == "'a b' c"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FitRequest(name="a", gpus="0;1"), "--gpus"),
        (lambda: FitRequest(name="a", gpus="0-1", nproc=3), "--nproc 3"),
        (lambda: FitRequest(name="a", epochs=0), "--epochs must be at least 1"),
        (lambda: FitRequest(name="a", device="gpu"), "--device"),
        (lambda: FitRequest(name="a", disc_divisors=(0, 2)), "--disc-divisors"),
        (lambda: PreprocessRequest(name="a", dataset="d", sample_rate="44k"), "--sr must be one of 32k, 40k, 48k"),
        (lambda: PreprocessRequest(name="a", dataset="d", config_overrides={"data": {}}), "'model' and 'train'"),
        (lambda: ExtractRequest(name="a", f0_method="yin"), "--f0-method"),
        (lambda: CheckRequest(name="mute"), "reserved"),
        (lambda: CheckRequest(name="a/b"), "not a folder name"),
        (lambda: CheckRequest(name=" a"), "leading or trailing"),
        (lambda: ReuseRequest(source="a", name="a"), "another name"),
    ],
)
def test_bad_values_are_refused_naming_the_flag(make, message):
    with pytest.raises(RequestError, match=message):
        make()


def test_gpu_lists():
    assert gpu_ids("0-1") == (0, 1) and gpu_ids("2,3") == (2, 3) and gpu_ids("") == () and gpu_ids(None) == ()
    assert FitRequest(name="a", gpus="0-1").processes_to_launch == 2
    assert FitRequest(name="a", nproc=3).processes_to_launch == 3 and FitRequest(name="a").processes_to_launch == 1


def test_all_runs_its_steps_with_its_own_settings():
    request = EXAMPLES[6]
    steps = request.steps()
    assert [step.STEP for step in steps] == ["preprocess", "check", "extract", "fit", "index"]
    for step in steps:
        for item in fields(step):
            assert getattr(step, item.name) == getattr(request, item.name), (step.STEP, item.name)
    assert steps[0].config_overrides == {"model": {"feature_dim": 32}}
    assert steps[2].f0_method == "pm" and steps[3].epochs == 3 and steps[3].gpus == "1"
    assert "--config-overrides" not in steps[3].argv()  # only the step that creates the experiment takes them
