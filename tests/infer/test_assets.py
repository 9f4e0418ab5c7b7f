"""Consistency of the external-asset registry (no downloads)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

import infer
from infer import assets
from infer.assets import ASSETS, GROUPS, asset_path, assets_dir, missing_assets, pretrained_paths, select_assets

RATES = {32000: "32k", 40000: "40k", 48000: "48k"}


def test_registry_has_the_26_rvc_files_with_unique_paths():
    assert len(ASSETS) == 26
    assert all(key == asset.key for key, asset in ASSETS.items())
    assert len({a.relative_path for a in ASSETS.values()}) == 26
    assert len({a.url_path for a in ASSETS.values()}) == 26
    assert ASSETS["hubert_base"].relative_path == "hubert/hubert_base.pt"
    assert ASSETS["hubert_base"].url_path == "hubert_base.pt"
    assert ASSETS["rmvpe"].relative_path == "rmvpe/rmvpe.pt"
    assert ASSETS["rmvpe"].url_path == "rmvpe.pt"


def test_every_entry_is_well_formed():
    for asset in ASSETS.values():
        assert asset.sha256 is not None and re.fullmatch(r"[0-9a-f]{64}", asset.sha256), asset.key
        assert asset.size is None or asset.size > 1_000_000, asset.key
        assert asset.description
        assert not Path(asset.relative_path).is_absolute() and ".." not in asset.relative_path
    assert len({a.sha256 for a in ASSETS.values()}) == 26  # no digest copied onto the wrong file


def test_known_sizes_cover_hubert_rmvpe_and_every_f0_model():
    sized = {key for key, asset in ASSETS.items() if asset.size is not None}
    f0_models = {key for key in ASSETS if "/f0" in key}
    assert sized == {"hubert_base", "rmvpe"} | f0_models
    for folder in ("pretrained", "pretrained_v2"):  # the discriminator does not depend on the rate
        assert len({ASSETS[f"{folder}/f0D{rate}"].size for rate in RATES.values()}) == 1


@pytest.mark.parametrize(("version", "rate", "use_f0"), list(itertools.product(("v1", "v2"), RATES, (True, False))))
def test_pretrained_paths_follow_rvc_naming(version, rate, use_f0):
    folder = "pretrained" if version == "v1" else "pretrained_v2"
    prefix = "f0" if use_f0 else ""
    generator, discriminator = pretrained_paths(version, rate, use_f0)
    assert generator.relative_path == f"{folder}/{prefix}G{RATES[rate]}.pth"
    assert discriminator.relative_path == f"{folder}/{prefix}D{RATES[rate]}.pth"
    assert generator.url_path == generator.relative_path
    assert pretrained_paths(version, RATES[rate], use_f0) == (generator, discriminator)
    assert ASSETS[generator.key] is generator and ASSETS[discriminator.key] is discriminator


def test_pretrained_paths_rejects_bad_arguments():
    with pytest.raises(ValueError, match="version"):
        pretrained_paths("v3", 40000, True)
    with pytest.raises(ValueError, match="sample rate"):
        pretrained_paths("v2", 44100, True)
    with pytest.raises(ValueError, match="sample rate"):
        pretrained_paths("v2", "fast", True)


def test_groups():
    assert set(GROUPS) == {"hubert", "rmvpe", "pretrained", "pretrained_v2", "essential", "all"}
    assert all(key in ASSETS for keys in GROUPS.values() for key in keys)
    assert GROUPS["hubert"] == ("hubert_base",) and GROUPS["rmvpe"] == ("rmvpe",)
    assert len(GROUPS["pretrained"]) == len(GROUPS["pretrained_v2"]) == 12
    assert all(ASSETS[k].relative_path.startswith("pretrained/") for k in GROUPS["pretrained"])
    assert all(ASSETS[k].relative_path.startswith("pretrained_v2/") for k in GROUPS["pretrained_v2"])
    parts = GROUPS["hubert"] + GROUPS["rmvpe"] + GROUPS["pretrained"] + GROUPS["pretrained_v2"]
    assert sorted(parts) == sorted(GROUPS["all"]) == sorted(ASSETS)
    g, d = pretrained_paths("v2", 40000, True)
    assert GROUPS["essential"] == ("hubert_base", "rmvpe", g.key, d.key)


def test_select_assets_expands_groups_without_duplicates():
    chosen = select_assets(["rmvpe", "essential", "pretrained_v2/f0G40k"])
    assert [a.key for a in chosen] == ["rmvpe", "hubert_base", "pretrained_v2/f0G40k", "pretrained_v2/f0D40k"]
    with pytest.raises(KeyError, match="unknown asset or group 'hubert_large'.*essential"):
        select_assets(["hubert_large"])


def test_urls_use_the_base_url():
    asset = ASSETS["pretrained_v2/f0G40k"]
    assert assets.DEFAULT_BASE_URL == "https://huggingface.co/lj1995/VoiceConversionWebUI/resolve/main/"
    assert asset.url() == assets.DEFAULT_BASE_URL + "pretrained_v2/f0G40k.pth"
    assert asset.url("http://127.0.0.1:8000/mirror") == "http://127.0.0.1:8000/mirror/pretrained_v2/f0G40k.pth"
    assert asset.filename == "f0G40k.pth"


def test_assets_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv(assets.ASSETS_DIR_ENV, raising=False)
    assert assets_dir() == Path(infer.__file__).resolve().parent.parent / "assets"
    monkeypatch.setenv(assets.ASSETS_DIR_ENV, str(tmp_path))
    assert assets_dir() == tmp_path
    assert asset_path("rmvpe") == tmp_path / "rmvpe" / "rmvpe.pt"
    assert asset_path("rmvpe", root=tmp_path / "x") == tmp_path / "x" / "rmvpe" / "rmvpe.pt"


def test_missing_assets_checks_presence_and_size(tmp_path):
    assert missing_assets(root=tmp_path) == list(ASSETS.values())
    hubert = asset_path("hubert_base", tmp_path)
    hubert.parent.mkdir(parents=True)
    with open(hubert, "wb") as handle:
        handle.truncate(ASSETS["hubert_base"].size)  # sparse file of the right size
    unsized = asset_path("pretrained/G40k", tmp_path)  # size unknown: presence is enough
    unsized.parent.mkdir(parents=True)
    unsized.write_bytes(b"x")
    wrong = asset_path("rmvpe", tmp_path)
    wrong.parent.mkdir(parents=True)
    wrong.write_bytes(b"truncated")
    missing = {a.key for a in missing_assets(root=tmp_path)}
    assert missing == set(ASSETS) - {"hubert_base", "pretrained/G40k"}
    assert [a.key for a in missing_assets(["essential"], root=tmp_path)] == [
        "rmvpe",
        "pretrained_v2/f0G40k",
        "pretrained_v2/f0D40k",
    ]
