"""The web UI's path policy: typed paths stay inside the studio's folders, save names are names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config import Settings
from webui.paths import OutsideStudioError, PathPolicy, file_name


@pytest.fixture
def policy(tmp_path: Path) -> PathPolicy:
    root = tmp_path / "studio"
    for name in ("weights", "logs", "assets", "opt", "input"):
        (root / name).mkdir(parents=True)
    return PathPolicy(Settings.from_env(root=root, output_dir=root / "opt"))


def test_paths_inside_the_studio_are_readable(policy: PathPolicy) -> None:
    root = policy.settings.root
    assert policy.readable(str(root / "input" / "song.wav"), "Input") == root / "input" / "song.wav"
    assert policy.readable("weights/alice.pth", "Voice") == root / "weights" / "alice.pth"
    assert policy.readable(f'  "{root / "logs" / "alice"}"  ', "Dataset") == root / "logs" / "alice"


@pytest.mark.parametrize(
    "typed",
    ["/etc/shadow", "../../etc/passwd", "input/../../secret.wav", "config.py", "~/.ssh/id_rsa", "/"],
)
def test_paths_outside_are_refused_whether_or_not_they_exist(policy: PathPolicy, typed: str) -> None:
    with pytest.raises(OutsideStudioError) as refused:
        policy.readable(typed, "Input audio")
    message = str(refused.value)
    assert message.startswith("Input audio:") and "--allow-path" in message
    assert "does not exist" not in message and "No such file" not in message


def test_a_symlink_out_of_the_studio_is_refused(policy: PathPolicy, tmp_path: Path) -> None:
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF")
    link = policy.settings.root / "input" / "innocent.wav"
    os.symlink(secret, link)
    with pytest.raises(OutsideStudioError):
        policy.readable(str(link), "Input audio")


def test_allow_path_adds_a_readable_folder(tmp_path: Path) -> None:
    data = tmp_path / "datasets"
    data.mkdir()
    settings = Settings.from_env(root=tmp_path / "studio", input_dirs=(data,))
    assert PathPolicy(settings).readable(str(data / "alice"), "Dataset") == data / "alice"


def test_output_folders_stay_under_the_writable_roots(policy: PathPolicy) -> None:
    out = policy.settings.output_dir
    assert policy.writable_dir("", "Output folder") == out
    assert policy.writable_dir("opt", "Output folder") == out
    assert policy.writable_dir("covers/2026", "Output folder") == out / "covers" / "2026"
    assert policy.writable_dir(str(policy.settings.weights_dir), "Output folder") == policy.settings.weights_dir
    for typed in ("/tmp", "../../evil", "/etc", str(policy.settings.assets_dir)):
        with pytest.raises(OutsideStudioError, match="Output folder"):
            policy.writable_dir(typed, "Output folder")


def test_in_place_edits_only_inside_the_writable_roots(policy: PathPolicy, tmp_path: Path) -> None:
    inside = policy.settings.weights_dir / "alice.pth"
    assert policy.writable_file(inside, "Model") == inside
    with pytest.raises(OutsideStudioError, match="Model"):
        policy.writable_file(tmp_path / "elsewhere.pth", "Model")


@pytest.mark.parametrize("typed", ["alice", "alice.pth", " alice ", "my voice v2", "声音", "a.b"])
def test_plain_names_are_accepted(typed: str) -> None:
    assert file_name(typed, "Save name", suffix=".pth") == typed.strip().removesuffix(".pth")


@pytest.mark.parametrize(
    "typed",
    ["../../../evil_merge", "a/b", "a\\b", "/abs", "C:evil", ".hidden", "..", "CON", "nul.txt", "x" * 200, "bad\x00"],
)
def test_paths_and_odd_names_are_refused(typed: str) -> None:
    with pytest.raises(ValueError, match="^Save name:"):
        file_name(typed, "Save name", suffix=".pth")


def test_an_empty_name_asks_for_one() -> None:
    with pytest.raises(ValueError, match="type a name"):
        file_name("  ", "Save name")
