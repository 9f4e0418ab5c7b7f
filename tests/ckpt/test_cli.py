"""``python -m infer ckpt ...``: every tool through the command line, JSON output and exit codes."""

from __future__ import annotations

import json

import pytest

from infer.__main__ import main
from infer.checkpoints import read_small_model
from infer.testing.voice import save_tiny_voice
from tests.ckpt.helpers import TINY_DIM
from tests.helpers import run_python, write_index


def _run(capsys, *argv: str) -> tuple[int, dict | str, str]:
    code = main(["ckpt", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if "--json" in argv and code == 0 else out), err


def test_merge_info_and_set_info(capsys, voice_a, voice_b, weights):
    code, data, _ = _run(capsys, "merge", "alice", "bob", "--weight-a", "0.6", "-o", "mix", "--json")
    assert code == 0 and data["path"] == str(weights / "mix.pth") and data["speakers"] == 4
    code, data, _ = _run(capsys, "info", "mix", "--json")
    assert code == 0 and data["sample_rate"] == 40000 and data["info"].startswith("Merged: 0.6")
    code, out, _ = _run(capsys, "set-info", "mix", "my mix")
    assert code == 0 and "mix.pth" in out
    code, out, _ = _run(capsys, "info", "mix")
    assert "Info: my mix" in out and "Sample rate: 40k" in out


def test_errors_are_one_line_with_exit_code_1(capsys, voice_a, weights):
    other = save_tiny_voice(weights / "fast.pth", "v2", 48000, True, 5, feature_dim=TINY_DIM)
    code, _, err = _run(capsys, "merge", "alice", str(other))
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and errors[0].startswith("error: Cannot merge") and "Traceback" not in err
    code, _, err = _run(capsys, "merge", "alice", "alice", "-o", "alice")
    assert code == 1 and "already exists" in err
    code, _, err = _run(capsys, "info", "nobody")
    assert code == 1 and "voice 'nobody' not found" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["ckpt", "extract"])
    assert exit_info.value.code == 2


def test_extract(capsys, generator_ckpt, weights):
    code, data, _ = _run(capsys, "extract", str(generator_ckpt), "--json")
    assert code == 0 and data["path"] == str(weights / "tinyexp_e7.pth") and data["version"] == "v2"
    code, _, err = _run(capsys, "extract", str(generator_ckpt), "--version", "v1", "--sample-rate", "48k", "-o", "x")
    assert code == 1 and "upsampling stages" in err


def test_bundle_and_import(capsys, voice_a, tmp_path, weights):
    write_index(tmp_path / "logs" / "alice" / "added_IVF4_Flat_nprobe_1_alice_v2.index", TINY_DIM)
    code, data, _ = _run(capsys, "bundle", "alice", "--key", "2", "--json")
    assert code == 0 and data["manifest"]["index"] == "alice.index" and data["manifest"]["suggested"]["key"] == 2.0
    bundle = data["path"]
    code, _, err = _run(capsys, "import", bundle)
    assert code == 1 and "already exists" in err
    code, data, _ = _run(capsys, "import", bundle, "--name", "alice2", "--json")
    assert code == 0 and data["voice"] == str(weights / "alice2.pth")
    assert data["index"] == str(tmp_path / "assets" / "indices" / "alice2.index")
    assert read_small_model(weights / "alice2.pth").sample_rate == 40000


def test_export_onnx(capsys, voice_a, weights):
    pytest.importorskip("onnx")
    code, data, _ = _run(capsys, "export-onnx", "alice", "--no-nsf-noise", "--json")
    assert code == 0 and data["path"] == str(weights / "alice.onnx")
    assert [t["name"] for t in data["inputs"]] == ["phone", "phone_lengths", "pitch", "pitchf", "ds", "rnd"]
    assert "0.66666" in data["noise_input"] and (weights / "alice.onnx").is_file()


def test_module_entry_point(voice_a, tmp_path):
    import os

    env = dict(os.environ, RVC_WEIGHTS_DIR=str(voice_a.parent))
    result = run_python(["-m", "infer", "ckpt", "info", "alice", "--json"], env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["version"] == "v2"
