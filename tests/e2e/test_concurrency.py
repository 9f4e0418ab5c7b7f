"""Two voices converted at the same time through ONE shared ModelCache give what each gives alone.

Both threads start together on a cold cache, so they also race to load the
shared content encoder and RMVPE.  The conversions are seeded: each call
draws its noise from its own generator, so the results must be bit-identical
to the same conversions run one after the other with a separate cache.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import infer
from infer.audio import load_audio
from tests import helpers
from tests.helpers import Installation

installation = helpers.installation  # module-scoped fixtures from tests/helpers.py
speech = helpers.speech

JOBS = {
    "alice": infer.ConvertParams(f0_method="rmvpe", seed=11),
    "bob": infer.ConvertParams(f0_method="rmvpe", seed=22),
}


def _convert(setup: Installation, cache, voice: str, audio: np.ndarray) -> np.ndarray:
    job = infer.prepare(setup.voices[voice], cache, JOBS[voice], index=setup.indexes.get(voice))
    return infer.convert_array(job, audio).audio


def test_two_voices_at_once_with_one_cache_match_each_alone(installation: Installation, speech: Path):
    audio = load_audio(speech, 16000)[: 16000 * 3 // 2]  # 1.5 s keeps the four conversions short
    alone_cache = installation.cache()
    alone = {voice: _convert(installation, alone_cache, voice, audio) for voice in JOBS}

    shared = installation.cache()
    start = threading.Barrier(len(JOBS))
    results: dict[str, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(voice: str) -> None:
        try:
            start.wait(timeout=60)
            results[voice] = _convert(installation, shared, voice, audio)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(voice,)) for voice in JOBS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert set(results) == set(JOBS)
    for voice in JOBS:
        assert np.array_equal(results[voice], alone[voice]), voice
    assert shared.content_encoder() is shared.content_encoder() and shared.pitch_models() is shared.pitch_models()


def test_a_cold_cache_loads_each_model_once_under_a_race(installation: Installation, monkeypatch: pytest.MonkeyPatch):
    import infer.content as content

    loads: list[str] = []
    original = content.load_content_encoder

    def counting(*args, **kwargs):
        loads.append("encoder")
        return original(*args, **kwargs)

    monkeypatch.setattr(content, "load_content_encoder", counting)
    cache = installation.cache()
    start = threading.Barrier(4)
    got: list[object] = []

    def work() -> None:
        start.wait(timeout=60)
        got.append(cache.content_encoder())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert loads == ["encoder"] and len(got) == 4 and all(item is got[0] for item in got)
