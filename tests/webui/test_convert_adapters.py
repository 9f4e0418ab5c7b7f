"""The Convert tab's adapters without a browser: widget values → requests → the library, and back."""

from __future__ import annotations

import os
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from config import Settings
from infer.audio import load_audio
from infer.convert import convert_file, prepare
from infer.params import ConvertParams
from tests.helpers import Installation
from webui.conversion import (
    BatchRequest,
    OutputFolder,
    SingleRequest,
    batch_inputs,
    chosen_index,
    chosen_source,
    make_params,
    output_folder,
    run_batch,
    run_single,
)
from webui.errors import shown_as_gr_error
from webui.paths import PathPolicy
from webui.voices import list_index_choices, list_voices, paired_index, summarize_voice, voice_file

UI_DEFAULTS = dict(
    speaker_id=0,
    key=0,
    auto_key=False,
    f0_method="rmvpe",
    index_rate=0.75,
    filter_radius=3,
    resample_sr=0,
    rms_mix_rate=0.25,
    protect=0.33,
)


@pytest.fixture(scope="module")
def settings(installation: Installation) -> Settings:
    return Settings.from_env(
        assets_dir=installation.assets_dir,
        weights_dir=installation.weights_dir,
        logs_dir=installation.logs_dir,
        device="cpu",
        root=installation.root,
    )


@pytest.fixture(scope="module")
def cache(installation: Installation):
    return installation.cache()


def test_voices_are_listed_and_looked_up_safely(settings: Settings, installation: Installation) -> None:
    (installation.weights_dir / "notes.txt").write_text("not a voice", encoding="utf-8")
    assert list_voices(settings) == ["alice.pth", "bob.pth", "carol.pth"]
    assert voice_file(settings, "bob.pth") == installation.voices["bob"]
    with pytest.raises(ValueError, match="Choose a voice"):
        voice_file(settings, None)
    with pytest.raises(FileNotFoundError, match="Refresh the voice list"):
        voice_file(settings, "dave.pth")
    outside = installation.root / "outside.pth"
    outside.write_bytes(installation.voices["alice"].read_bytes())
    with pytest.raises(FileNotFoundError):
        voice_file(settings, "../outside.pth")  # names only: no path may leave the weights folder


def test_indexes_are_offered_and_paired_by_exact_name(settings: Settings, installation: Installation) -> None:
    choices = list_index_choices(settings, "none")
    assert choices[0] == ("none", "")
    assert ("logs/alice/added_IVF4_Flat_nprobe_1_alice_v2.index", str(installation.indexes["alice"])) in choices
    assert paired_index(settings, installation.voices["alice"]) == str(installation.indexes["alice"])
    assert paired_index(settings, installation.voices["bob"]) == ""  # "bob" is not a substring match of anything


def test_voice_summary_reads_the_model(cache, installation: Installation) -> None:
    carol = summarize_voice(cache, installation.voices["carol"])
    assert (carol.name, carol.version, carol.sample_rate, carol.use_f0) == ("carol", "v2", 48000, False)
    assert carol.n_speakers >= 1


def test_widget_values_become_convert_params() -> None:
    params = make_params(**{**UI_DEFAULTS, "key": -5.0, "speaker_id": 2.0, "resample_sr": 44100, "seed": 7.0})
    assert params == ConvertParams(key=-5, speaker_id=2, resample_sr=44100, seed=7)
    empty = make_params(**{**UI_DEFAULTS, "key": None, "speaker_id": None, "resample_sr": None, "seed": None})
    assert (empty.key, empty.speaker_id, empty.resample_sr, empty.seed) == (0, 0, 0, None)
    with pytest.raises(ValueError, match="protect must be between 0 and 0.5"):
        make_params(**{**UI_DEFAULTS, "protect": 0.7})


def test_source_and_index_choice(settings, installation: Installation) -> None:
    policy = PathPolicy(settings)
    typed = installation.logs_dir / "typed.wav"
    assert chosen_source("/tmp/upload.wav", f'  "{typed}" ', policy) == typed  # a typed path wins, quotes removed
    assert chosen_source("/tmp/upload.wav", "", policy) == Path("/tmp/upload.wav")
    with pytest.raises(ValueError, match="Upload an audio file"):
        chosen_source(None, "  ", policy)
    index = str(installation.indexes["alice"])
    assert chosen_index(index, 0.75, policy) == Path(index)
    assert chosen_index(index, 0.0, policy) is None and chosen_index("", 0.75, policy) is None
    with pytest.raises(FileNotFoundError, match="does not exist"):
        chosen_index(str(installation.logs_dir / "gone.index"), 0.5, policy)


def test_single_conversion_matches_the_library(
    settings, cache, installation: Installation, speech: Path, tmp_path: Path
) -> None:
    params = make_params(**UI_DEFAULTS, seed=123)
    request = SingleRequest(installation.voices["alice"], speech, installation.indexes["alice"], params)
    outcome = run_single(request, cache, settings, OutputFolder(tmp_path / "served"))
    assert outcome.output.parent == tmp_path / "served" and outcome.output.suffix == ".wav"
    assert outcome.elapsed > 0 and outcome.result.index_path == installation.indexes["alice"]
    assert outcome.result.info_text().startswith("Success.\nIndex:\n")

    job = prepare(installation.voices["alice"], cache, ConvertParams(seed=123), index=installation.indexes["alice"])
    convert_file(job, speech, tmp_path / "library.wav")
    ui_audio, library_audio = load_audio(outcome.output, 40000), load_audio(tmp_path / "library.wav", 40000)
    np.testing.assert_array_equal(ui_audio, library_audio)


def test_output_folder_prunes_old_files(tmp_path: Path) -> None:
    folder = OutputFolder(tmp_path, max_age=60)
    old, recent = tmp_path / "old.wav", tmp_path / "recent.wav"
    old.write_bytes(b"x")
    recent.write_bytes(b"x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    path = folder.new_path(Path("a song.mp3"), Path("alice.pth"))
    assert path.name.startswith("a song_alice_") and path.suffix == ".wav"
    assert not old.exists() and recent.exists()


def test_batch_converts_audio_and_skips_the_rest(
    settings, cache, installation: Installation, speech: Path, tmp_path: Path
) -> None:
    policy = PathPolicy(settings)
    inputs = installation.logs_dir / tmp_path.name / "in"
    inputs.mkdir(parents=True)
    (inputs / "one.wav").write_bytes(speech.read_bytes())
    (inputs / "readme.txt").write_text("not audio", encoding="utf-8")
    assert batch_inputs(str(inputs), ["/ignored.wav"], policy) == (inputs / "one.wav", inputs / "readme.txt")
    assert batch_inputs("", [str(speech)], policy) == (speech,)
    with pytest.raises(ValueError, match="input folder"):
        batch_inputs(" ", None, policy)
    assert output_folder("opt", settings) == settings.output_dir
    assert output_folder("mine", settings) == settings.output_dir / "mine"
    assert output_folder(str(installation.logs_dir / "abs"), settings) == installation.logs_dir / "abs"

    seen = []
    request = BatchRequest(
        installation.voices["bob"],
        batch_inputs(str(inputs), None, policy),
        tmp_path / "out",
        "flac",
        False,
        None,
        make_params(**UI_DEFAULTS, f0_curve=str(tmp_path / "ignored.csv")),
    )
    items = run_batch(request, cache, settings, on_item=seen.append)
    assert [(i.input.name, i.status) for i in items] == [("one.wav", "converted"), ("readme.txt", "skipped")]
    assert seen == items and (tmp_path / "out" / "one.flac").is_file()  # the curve of one file is not applied to all


def test_library_errors_become_gr_errors() -> None:
    with pytest.raises(gr.Error, match="key must be between"):
        with shown_as_gr_error():
            make_params(**{**UI_DEFAULTS, "key": 99})
    with pytest.raises(gr.Error, match="RuntimeError: boom"):
        with shown_as_gr_error():
            raise RuntimeError("boom")
