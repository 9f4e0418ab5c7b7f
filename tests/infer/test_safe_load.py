"""Loading model files never runs code from them, and bad files give clear errors."""

from __future__ import annotations

import pickle
import sys
import types

import pytest
import torch

from infer.safe_load import FairseqDictionary, ModelFileError, UnsafeModelFileError, load_torch_file


class _CreatesFile:
    """Unpickling this calls ``open(path, "w")``: it creates a file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_hostile_pickle_is_refused_and_runs_nothing(tmp_path, zip_format):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    torch.save(
        {"weight": {"a": torch.zeros(2)}, "x": _CreatesFile(marker)}, path, _use_new_zipfile_serialization=zip_format
    )
    assert not marker.exists()
    with pytest.raises(UnsafeModelFileError) as err:
        load_torch_file(path)
    assert not marker.exists()
    assert "evil.pth" in str(err.value)
    assert "open" in str(err.value)


def test_plain_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "raw.pth"
    path.write_bytes(pickle.dumps({"x": _CreatesFile(marker)}, protocol=2))
    with pytest.raises(ModelFileError):
        load_torch_file(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "empty"),
        (b"hello, this is not a model", "not a valid PyTorch model file"),
        (b"PK\x03\x04broken", "not a valid"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, content, expected):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=expected) as err:
        load_torch_file(path)
    assert str(path) in str(err.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_torch_file(tmp_path / "nope.pth")
    with pytest.raises(ModelFileError, match="folder"):
        load_torch_file(tmp_path)


def test_plain_tensors_and_containers_load(tmp_path):
    path = tmp_path / "ok.pth"
    obj = {"weight": {"a": torch.arange(3, dtype=torch.float16)}, "config": [1, "1", [2, 3]], "info": "x"}
    torch.save(obj, path)
    loaded = load_torch_file(path)
    assert loaded["config"] == [1, "1", [2, 3]]
    assert torch.equal(loaded["weight"]["a"], obj["weight"]["a"])


def test_fairseq_dictionary_maps_to_stand_in(tmp_path, monkeypatch):
    # Build a pickle that names fairseq.data.dictionary.Dictionary without fairseq installed.
    module = types.ModuleType("fairseq.data.dictionary")

    class Dictionary:
        def __init__(self):
            self.symbols = ["<s>", "<pad>", "</s>", "<unk>", "0", "1"]

    Dictionary.__module__ = "fairseq.data.dictionary"
    Dictionary.__qualname__ = "Dictionary"
    module.Dictionary = Dictionary
    for name in ("fairseq", "fairseq.data", "fairseq.data.dictionary"):
        monkeypatch.setitem(sys.modules, name, module if name.endswith("dictionary") else types.ModuleType(name))
    path = tmp_path / "hubert.pt"
    torch.save({"task_state": {"dictionaries": [Dictionary()]}, "model": {"w": torch.ones(1)}}, path)
    for name in ("fairseq", "fairseq.data", "fairseq.data.dictionary"):
        monkeypatch.delitem(sys.modules, name)

    loaded = load_torch_file(path)
    dictionary = loaded["task_state"]["dictionaries"][0]
    assert isinstance(dictionary, FairseqDictionary)
    assert len(dictionary) == 6
    with pytest.raises(UnsafeModelFileError, match="fairseq.data.dictionary.Dictionary"):
        load_torch_file(path, stand_ins={})
