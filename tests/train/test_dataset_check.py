"""The dataset check: usable minutes, dropped pieces, clipping and warnings (FAQ Q10)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.train.conftest import tone
from tests.train.conftest import write_audio as write
from train.dataset_check import LOW_SECONDS, check_dataset, drop_kind
from train.preprocess import REPORT_NAME, preprocess_dataset

SR = 40000


@pytest.fixture
def experiment(tmp_path):
    """10 s tone (3 pieces), 4.3 s tone (1 piece + a short tail), a silent file, a clipped file, a text file."""
    data = tmp_path / "data"
    write(data / "a.wav", tone(10))
    write(data / "b.wav", tone(4.3))
    write(data / "c silent.wav", np.zeros(3 * SR))
    clipped = tone(2.0, amp=0.9)
    clipped[1000:1400] = 1.0
    write(data / "d clipped.wav", clipped, subtype="PCM_16")
    (data / "e.wav").write_text("not audio", encoding="utf-8")
    exp = tmp_path / "exp"
    report = preprocess_dataset(data, exp, SR, workers=1)
    return exp, report


def test_numbers_and_warnings(experiment):
    exp, report = experiment
    check = check_dataset(exp, SR)
    assert check.pieces == 5
    assert check.usable_seconds == pytest.approx(10.0 + 3.7 + 2.0)  # overlaps counted once
    assert check.training_seconds == pytest.approx(10.6 + 3.7 + 2.0)
    assert check.dropped == {"too short": 1, "silent file": 1}
    assert check.clipped_sources == [("d clipped.wav", 1, pytest.approx(400 / SR))]
    assert [name for name, _ in check.failed_sources] == ["e.wav"]
    assert check.trainable and check.usable_minutes == pytest.approx(15.7 / 60)
    text = "\n".join(check.warnings)
    assert "less than 5 minutes of usable speech: expect a weak model; 10-50 minutes are recommended" in text
    assert "could not be read and were left out: e.wav" in text
    assert "1 file(s) have clipping" in text
    assert len(check.warnings) == 3
    summary = check.text()
    assert "0.3 min of usable audio in 5 pieces" in summary and "1 too short" in summary
    assert "Clipping in d clipped.wav" in summary


def test_passed_report_is_used(experiment):
    exp, report = experiment
    (exp / REPORT_NAME).unlink()
    check = check_dataset(exp, SR, report)
    assert check.dropped == {"too short": 1, "silent file": 1} and check.usable_seconds == pytest.approx(15.7)


def test_without_a_report_the_usable_time_is_estimated(experiment):
    exp, _ = experiment
    (exp / REPORT_NAME).unlink()
    check = check_dataset(exp, SR)
    assert check.pieces == 5 and check.dropped == {} and check.clipped_sources == []
    assert check.usable_seconds == pytest.approx(15.7)  # 3.7 s pieces overlap the next by 0.3 s
    assert any("No preprocessing report" in warning for warning in check.warnings)


def test_five_minutes_is_the_threshold(experiment):
    exp, report = experiment
    for seconds, warned in [(LOW_SECONDS - 1, True), (LOW_SECONDS + 1, False)]:
        report.unique_seconds = seconds
        check = check_dataset(exp, SR, report)
        assert any("less than 5 minutes" in warning for warning in check.warnings) == warned


def test_all_audio_dropped(tmp_path):
    write(tmp_path / "data" / "silence.wav", np.zeros(4 * SR))
    write(tmp_path / "data" / "blip.wav", tone(0.5))
    preprocess_dataset(tmp_path / "data", tmp_path / "exp", SR, workers=1)
    check = check_dataset(tmp_path / "exp", SR)
    assert check.pieces == 0 and not check.trainable and check.usable_seconds == 0
    assert check.dropped == {"silent file": 1, "too short": 1}
    assert check.warnings[0].startswith("All audio was dropped")
    assert not any("less than 5 minutes" in warning for warning in check.warnings)


def test_not_preprocessed(tmp_path):
    check = check_dataset(tmp_path / "nothing", SR)
    assert check.pieces == 0
    assert "run preprocessing first" in check.warnings[0]


def test_pieces_that_would_break_training(experiment):
    exp, _ = experiment
    gt = exp / "0_gt_wavs"
    nan_piece = tone(2)
    nan_piece[5] = np.nan
    write(gt / "9_0.wav", nan_piece)  # RVC writes NaN for silent pieces
    write(exp / "1_16k_wavs" / "9_0.wav", tone(2, 16000), 16000)
    write(gt / "9_1.wav", tone(2, 48000), 48000)  # no 16 kHz copy, and the wrong rate
    (gt / "9_2.wav").write_bytes(b"RIFF junk")
    text = "\n".join(check_dataset(exp, SR).warnings)
    assert "1 piece(s) contain NaN or infinite samples (9_0.wav" in text
    assert "1 piece(s) are at 48000 Hz, not 40000 Hz" in text
    assert "1 piece(s) have no 16 kHz copy in 1_16k_wavs (9_1.wav)" in text
    assert "1 piece(s) cannot be read: 9_2.wav" in text
    assert "report lists 5 pieces but 0_gt_wavs holds 7" in text


def test_wrong_experiment_rate_and_cancelled_run(experiment):
    exp, report = experiment
    text = "\n".join(check_dataset(exp, 48000).warnings)
    assert "Preprocessing ran at 40000 Hz but the experiment is at 48000 Hz" in text
    report.cancelled = True
    assert any("cancelled" in warning for warning in check_dataset(exp, SR, report).warnings)


def test_drop_kind():
    assert drop_kind("too short: 0.42 s < 1.00 s") == "too short"
    assert drop_kind("silent file: nothing above -42 dB") == "silent file"
    assert drop_kind("too loud after filtering: peak 2.70 > 2.5") == "too loud after filtering"


def test_unreadable_report_is_a_warning(experiment):
    exp, _ = experiment
    (exp / REPORT_NAME).write_text("{not json", encoding="utf-8")
    check = check_dataset(exp, SR)
    assert any("Cannot read the preprocessing report" in warning for warning in check.warnings)
