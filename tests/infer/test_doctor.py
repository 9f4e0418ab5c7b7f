"""The installation self-check: GPU architecture support, model files, folders, and the CLI."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from infer.__main__ import main
from infer.assets import asset_path, select_assets
from infer.doctor import FAIL, OK, WARN, check_installation, gpu_arch_supported


@pytest.mark.parametrize(
    ("capability", "arch_list", "expected"),
    [
        ((8, 6), ["sm_80", "sm_90"], True),  # same major, newer minor runs sm_80 kernels
        ((8, 9), ["sm_86"], True),
        ((7, 5), ["sm_80", "sm_86"], False),  # older GPU than every kernel
        ((12, 0), ["sm_50", "sm_80", "sm_90"], False),  # RTX 50xx on a CUDA 12.4-era build
        ((12, 0), ["sm_90", "compute_90"], True),  # PTX is compiled for newer GPUs on the fly
        ((12, 0), ["sm_100", "sm_120"], True),
    ],
)
def test_gpu_arch_support(capability, arch_list, expected):
    assert gpu_arch_supported(capability, arch_list) is expected


def _by_name(report, name):
    return [check for check in report.checks if check.name == name]


def test_missing_model_files_are_named_with_their_paths(tmp_path):
    report = check_installation(assets_dir=tmp_path / "assets", weights_dir=tmp_path / "w", logs_dir=tmp_path / "l")
    (models,) = _by_name(report, "models")
    assert models.status == WARN and "download_models.py" in models.fix
    assert str(tmp_path / "assets" / "hubert" / "hubert_base.pt") in models.detail
    assert report.ok  # missing files are a warning: the UI still starts and offers the download


def test_model_files_of_the_right_size_pass(tmp_path):
    for asset in select_assets(["essential"]):
        path = asset_path(asset, tmp_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.truncate(asset.size)  # sparse: the size check is what is tested, not the contents
    (models,) = _by_name(check_installation(assets_dir=tmp_path), "models")
    assert models.status == OK, models


def _fake_gpu(monkeypatch, name, capability, arch_list, memory_gb=24):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda index=0: SimpleNamespace(total_memory=memory_gb * 2**30)
    )
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: arch_list)


def test_a_gpu_newer_than_the_torch_build_fails_with_what_to_do(monkeypatch, tmp_path):
    _fake_gpu(monkeypatch, "NVIDIA GeForce RTX 5090", (12, 0), ["sm_80", "sm_90"])
    report = check_installation(assets_dir=tmp_path)
    (gpu,) = _by_name(report, "gpu")
    assert gpu.status == FAIL and "sm_120" in gpu.detail and "CUDA 12.8" in gpu.fix
    assert not report.ok


def test_a_supported_gpu_reports_its_precision_and_small_memory(monkeypatch, tmp_path):
    _fake_gpu(monkeypatch, "NVIDIA GeForce RTX 3060", (8, 6), ["sm_80", "sm_86"])
    (gpu,) = _by_name(check_installation(assets_dir=tmp_path), "gpu")
    assert gpu.status == OK and "fp16" in gpu.detail
    _fake_gpu(monkeypatch, "NVIDIA GeForce GTX 1060 3GB", (6, 1), ["sm_61"], memory_gb=3)  # fp32 in RVC too
    (gpu,) = _by_name(check_installation(assets_dir=tmp_path), "gpu")
    assert gpu.status == WARN and "fp32" in gpu.detail and "4 GB" in gpu.fix


def test_a_folder_that_cannot_be_created_fails(tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    report = check_installation(assets_dir=tmp_path, weights_dir=blocker / "weights")
    (weights,) = _by_name(report, "weights folder")
    assert weights.status == FAIL and str(blocker) in weights.detail
    assert not report.ok


def test_cli_json_and_exit_codes(tmp_path, capsys):
    assert main(["doctor", "--json", "--assets-dir", str(tmp_path), "--weights-dir", str(tmp_path / "w")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    assert {"python", "torch", "models", "weights folder", "logs folder"} <= {c["name"] for c in data["checks"]}
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["doctor", "--assets-dir", str(tmp_path), "--logs-dir", str(blocker / "logs")]) == 1
    assert "[fail] logs folder" in capsys.readouterr().out
