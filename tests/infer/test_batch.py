"""Batch conversion: which files are converted, skipped or failed, output names, cancel, progress.

The conversion itself is replaced by a stand-in that records its calls and
writes a small WAV, so these tests check the batch logic in milliseconds; the
end-to-end tests run real conversions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import infer.batch as batch_module
from infer.audio import save_audio
from infer.batch import BatchItem, collect_inputs, convert_batch, summarize
from infer.convert import ConversionError
from infer.params import ConversionResult
from infer.pipeline import ConversionCancelled


def _tone(path: Path, seconds: float = 0.6, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    save_audio(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
    return path


class FakeConvert:
    """Stands in for ``convert_file``: writes 0.1 s of silence, or raises for chosen names."""

    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.fail = fail or {}
        self.calls: list[tuple[Path, Path, str | None, bool]] = []

    def __call__(self, job, source, output, *, format=None, overwrite=False, progress=None, cancel=None, **_):
        self.calls.append((Path(source), Path(output), format, overwrite))
        if progress is not None:
            progress(0.5, "converting")
        error = self.fail.get(Path(source).name)
        if error is not None:
            raise error
        if Path(output).exists() and not overwrite:
            raise FileExistsError(f"'{output}' already exists")
        save_audio(output, np.zeros(4000, np.int16), 40000, format=format, overwrite=overwrite)
        return ConversionResult(sample_rate=40000, audio=np.zeros(4000, np.int16), input_seconds=0.6)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeConvert:
    stand_in = FakeConvert()
    monkeypatch.setattr(batch_module, "convert_file", stand_in)
    return stand_in


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    _tone(src / "a.wav")
    _tone(src / "b.flac")
    _tone(src / "song.final.wav")
    (src / "notes.txt").write_text("not audio", encoding="utf-8")
    _tone(src / ".hidden.wav")
    (src / "sub").mkdir()
    _tone(src / "sub" / "nested.wav")
    return src


def test_collect_inputs_lists_visible_files_of_a_folder(folder: Path):
    names = [p.name for p in collect_inputs(folder)]
    assert names == ["a.wav", "b.flac", "notes.txt", "song.final.wav"]


def test_collect_inputs_keeps_a_file_list_in_order_without_duplicates(tmp_path: Path):
    files = [tmp_path / "z.wav", tmp_path / "a.wav", tmp_path / "z.wav"]
    assert collect_inputs(files) == [tmp_path / "z.wav", tmp_path / "a.wav"]


def test_collect_inputs_rejects_a_missing_folder(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        collect_inputs(tmp_path / "nope")


def test_batch_converts_audio_skips_text_and_never_doubles_extensions(fake: FakeConvert, folder: Path, tmp_path):
    out = tmp_path / "out"
    items = convert_batch(object(), collect_inputs(folder), out, format="flac")
    by_name = {item.input.name: item for item in items}
    assert summarize(items) == {"converted": 3, "skipped": 1, "failed": 0}
    assert by_name["notes.txt"].status == "skipped" and "not an audio file" in by_name["notes.txt"].message
    assert sorted(p.name for p in out.iterdir()) == ["a.flac", "b.flac", "song.final.flac"]
    assert by_name["a.wav"].output == out / "a.flac" and by_name["notes.txt"].output is None
    assert all(call[2] == "flac" for call in fake.calls) and len(fake.calls) == 3
    assert by_name["a.wav"].result is not None and by_name["a.wav"].result.audio is None  # not kept in memory


def test_a_failed_file_does_not_stop_the_batch(monkeypatch, folder: Path, tmp_path: Path):
    stand_in = FakeConvert(fail={"a.wav": ConversionError("'a.wav' is silent; there is no voice to convert.")})
    monkeypatch.setattr(batch_module, "convert_file", stand_in)
    items = convert_batch(object(), collect_inputs(folder), tmp_path / "out", format="wav")
    by_name = {item.input.name: item for item in items}
    assert by_name["a.wav"].status == "failed" and "silent" in by_name["a.wav"].message
    assert by_name["b.flac"].status == "converted" and by_name["song.final.wav"].status == "converted"


def test_damaged_audio_fails_but_unknown_files_are_skipped(fake: FakeConvert, tmp_path: Path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    data = tmp_path / "data.bin"
    data.write_bytes(bytes(range(256)) * 4)
    items = convert_batch(object(), [broken, data, tmp_path / "missing.wav"], tmp_path / "out")
    assert [item.status for item in items] == ["failed", "skipped", "failed"]
    assert "broken.wav" in items[0].message and "missing.wav" in items[2].message
    assert fake.calls == []


def test_existing_outputs_need_overwrite(fake: FakeConvert, folder: Path, tmp_path: Path):
    out = tmp_path / "out"
    _tone(out / "a.wav")
    items = convert_batch(object(), [folder / "a.wav", folder / "b.flac"], out, format="wav")
    assert [item.status for item in items] == ["failed", "converted"]
    assert "already exists" in items[0].message
    again = convert_batch(object(), [folder / "a.wav"], out, format="wav", overwrite=True)
    assert again[0].status == "converted" and fake.calls[-1][3] is True


def test_two_inputs_with_one_stem_do_not_overwrite_each_other(fake: FakeConvert, tmp_path: Path):
    first, second = _tone(tmp_path / "take.wav"), _tone(tmp_path / "take.flac")
    items = convert_batch(object(), [first, second], tmp_path / "out", format="mp3", overwrite=True)
    assert [item.status for item in items] == ["converted", "failed"]
    assert "take.wav" in items[1].message and len(fake.calls) == 1


def test_output_may_not_replace_its_input(fake: FakeConvert, tmp_path: Path):
    source = _tone(tmp_path / "a.wav")
    items = convert_batch(object(), [source], tmp_path, format="wav", overwrite=True)
    assert items[0].status == "failed" and "replace the input" in items[0].message
    assert fake.calls == []
    assert sf.info(str(source)).duration == pytest.approx(0.6)


def test_cancel_skips_the_rest(fake: FakeConvert, folder: Path, tmp_path: Path):
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return len(fake.calls) >= 1

    items = convert_batch(object(), [folder / "a.wav", folder / "b.flac"], tmp_path / "out", cancel=cancel)
    assert [item.status for item in items] == ["converted", "skipped"]
    assert items[1].message == "cancelled" and calls["n"] >= 2


def test_cancel_inside_a_file_is_reported_as_skipped(monkeypatch, folder: Path, tmp_path: Path):
    stand_in = FakeConvert(fail={"a.wav": ConversionCancelled("Conversion cancelled.")})
    monkeypatch.setattr(batch_module, "convert_file", stand_in)
    items = convert_batch(object(), [folder / "a.wav"], tmp_path / "out")
    assert items[0].status == "skipped" and items[0].message == "cancelled"


def test_progress_covers_the_whole_batch_and_items_arrive_in_order(fake: FakeConvert, folder: Path, tmp_path: Path):
    seen: list[tuple[float, str]] = []
    done: list[BatchItem] = []
    inputs = [folder / "a.wav", folder / "notes.txt"]
    convert_batch(object(), inputs, tmp_path / "out", progress=lambda f, m: seen.append((f, m)), on_item=done.append)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert ("[1/2] a.wav: converting" in [m for _, m in seen]) and (0.25, "[1/2] a.wav: converting") in seen
    assert [item.input.name for item in done] == ["a.wav", "notes.txt"]


def test_batch_item_as_dict_is_json_ready(fake: FakeConvert, folder: Path, tmp_path: Path):
    import json

    items = convert_batch(object(), [folder / "a.wav", folder / "notes.txt"], tmp_path / "out")
    data = json.loads(json.dumps([item.as_dict() for item in items]))
    assert data[0]["status"] == "converted" and data[0]["output"].endswith("a.wav") and data[0]["sample_rate"] == 40000
    assert data[1] == {
        "input": str(folder / "notes.txt"),
        "output": None,
        "status": "skipped",
        "message": data[1]["message"],
    }
