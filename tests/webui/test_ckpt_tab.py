"""The ckpt tab without a browser: merge, show/change info and extract, through the tab's handler functions."""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr
import pytest
import torch

from infer.checkpoints import read_small_model
from infer.testing.voice import save_tiny_voice
from infer.voice import load_voice
from tests.ckpt.helpers import TINY_DIM, save_tiny_generator, write_train_log
from tests.helpers import REPO_ROOT
from webui import ckpt_actions
from webui.tabs.ckpt import fill_from_experiment, guarded

SKIPPED = type(gr.skip())


@pytest.fixture
def voices(settings) -> tuple[Path, Path]:
    """Two tiny v2 40k pitch voices of the same shape (mergeable): alice.pth and bob.pth in the weights folder."""
    a = save_tiny_voice(settings.weights_dir / "alice.pth", "v2", 40000, True, 0, feature_dim=TINY_DIM, info="A")
    b = save_tiny_voice(settings.weights_dir / "bob.pth", "v2", 40000, True, 1, feature_dim=TINY_DIM, info="B")
    return a, b


def handler(ctx, action):
    """The tab's handler for ``action`` called as Gradio would (without a request)."""
    run = guarded(ctx, action)
    return lambda *values: run(None, *values)


def test_merge_by_voice_name_writes_the_weighted_sum(ctx, settings, voices):
    text = handler(ctx, ckpt_actions.merge)("alice.pth", "bob.pth", 0.25, " a bit of both ", "mix", False)
    target = settings.weights_dir / "mix.pth"
    assert text.startswith(f"Saved {target}: 40k v2, with pitch guidance") and target.is_file()
    a, b, merged = (read_small_model(p) for p in (*voices, target))
    for key, tensor in merged.weight.items():
        assert torch.equal(tensor, (0.25 * a.weight[key].float() + 0.75 * b.weight[key].float()).half()), key
    assert merged.info == "a bit of both"
    assert load_voice(target).sample_rate == 40000


def test_merge_errors_reach_the_user_as_gradio_errors(ctx, settings, voices):
    merge = handler(ctx, ckpt_actions.merge)
    save_tiny_voice(settings.weights_dir / "v1.pth", "v1", 40000, True, 2, feature_dim=TINY_DIM)
    with pytest.raises(gr.Error, match="version"):
        merge("alice.pth", "v1.pth", 0.5, "", "bad", False)
    with pytest.raises(gr.Error, match="Choose a voice B"):
        merge("alice.pth", "  ", 0.5, "", "bad", False)
    with pytest.raises(gr.Error, match=re.escape(str(settings.weights_dir / "ghost.pth"))):
        merge("alice.pth", "ghost.pth", 0.5, "", "bad", False)
    assert not (settings.weights_dir / "bad.pth").exists()
    merge("alice.pth", "bob.pth", 0.5, "", "mix", False)
    before = (settings.weights_dir / "mix.pth").read_bytes()
    with pytest.raises(gr.Error, match=r"mix\.pth' already exists.*Tick .Replace an existing file"):
        merge("alice.pth", "bob.pth", 0.9, "", "mix", False)  # exists: not replaced without the checkbox
    assert (settings.weights_dir / "mix.pth").read_bytes() == before
    merge("alice.pth", "bob.pth", 0.9, "", "mix", True)
    assert (settings.weights_dir / "mix.pth").read_bytes() != before


def test_show_and_change_info(ctx, settings, voices):
    show = handler(ctx, lambda s, _say, voice: ckpt_actions.show_info(s, voice))
    modify = handler(ctx, ckpt_actions.modify_info)
    assert "Info: A" in show("alice.pth") and "Sample rate: 40k" in show(f' "{voices[0]}" ')
    text = modify("alice.pth", "renamed copy", "alice_copy", False)
    assert "alice_copy.pth" in text
    assert read_small_model(settings.weights_dir / "alice_copy.pth").info == "renamed copy"
    assert read_small_model(voices[0]).info == "A"  # the original is kept when saving under a new name
    modify("alice.pth", "in place", "", False)
    assert read_small_model(voices[0]).info == "in place"
    with pytest.raises(gr.Error, match="Choose a voice"):
        show("")


def test_extract_fills_settings_from_the_experiment_and_saves_a_voice(ctx, settings):
    checkpoint = save_tiny_generator(settings.logs_dir / "tinyexp", version="v1", sample_rate=48000, iteration=7)
    assert ckpt_actions.list_checkpoints(settings) == [("tinyexp/G_7.pth", str(checkpoint))]
    assert "(generator checkpoint)" in ckpt_actions.show_info(settings, str(checkpoint))
    sr, version, pitch = fill_from_experiment(str(checkpoint))
    assert (sr["value"], version["value"], pitch["value"]) == ("48k", "v1", True)
    text = handler(ctx, ckpt_actions.extract)(str(checkpoint), "", "48k", "v1", "from the UI", False)
    target = settings.weights_dir / "tinyexp_e7.pth"  # the trainer's own export name, so the index pairs
    assert str(target) in text
    voice = load_voice(target)
    assert (voice.sample_rate, voice.version, voice.use_f0, voice.info) == (48000, "v1", True, "from the UI")


def test_extract_reads_rvcs_train_log_and_leaves_unknowns_alone(ctx, settings, tmp_path):
    folder = settings.logs_dir / "rvcexp"
    checkpoint = save_tiny_generator(folder, version="v2", sample_rate=32000, config_json=False, iteration=3)
    write_train_log(folder, sample_rate="32k", version="v2")
    settings_found = ckpt_actions.checkpoint_settings(str(checkpoint))
    assert (settings_found.sample_rate, settings_found.version) == ("32k", "v2")
    lonely = save_tiny_generator(tmp_path / "loose", config_json=False, f0_files=False)
    assert all(isinstance(update, SKIPPED) for update in fill_from_experiment(str(lonely)))
    assert all(isinstance(update, SKIPPED) for update in fill_from_experiment(""))
    handler(ctx, ckpt_actions.extract)(str(checkpoint), "rvc_voice", "32k", "v2", "", False)
    assert load_voice(settings.weights_dir / "rvc_voice.pth").sample_rate == 32000


def test_extract_refuses_a_voice_or_a_missing_file(ctx, settings, voices):
    extract = handler(ctx, ckpt_actions.extract)
    with pytest.raises(gr.Error, match="does not exist"):
        extract(str(settings.logs_dir / "exp" / "G_99.pth"), "", "40k", "v2", "", False)
    with pytest.raises(gr.Error, match="alice.pth"):
        extract("alice.pth", "again", "40k", "v2", "", False)  # a voice is not a G_ checkpoint
    assert not (settings.weights_dir / "again.pth").exists()


KEY_LITERAL = re.compile(r"""["']((?:train|ckpt|export)\.[a-z0-9_]+)["']""")


@pytest.mark.parametrize(
    "source",
    [
        "webui/tabs/train.py",
        "webui/tabs/ckpt.py",
        "webui/tabs/export.py",
        "webui/train_handlers.py",
        "webui/ckpt_actions.py",
    ],
)
def test_every_text_key_in_the_tabs_exists(source):
    from i18n import load_catalog

    catalog = load_catalog("en_US")
    keys = set(KEY_LITERAL.findall((REPO_ROOT / source).read_text(encoding="utf-8")))
    assert keys, f"no text keys found in {source}"
    assert sorted(keys - set(catalog)) == []


def test_dynamic_train_texts_exist():
    from i18n import load_catalog
    from webui.jobs import JobState
    from webui.train_handlers import STEP_BUILDERS

    catalog = load_catalog("en_US")
    steps = {r for r in STEP_BUILDERS if r != "all"} | {"check"}
    wanted = {f"train.state_{s.value}" for s in JobState} | {f"train.step_{s}" for s in steps}
    wanted |= {f"train.ended_{s.value}" for s in JobState if s is not JobState.RUNNING}
    assert sorted(wanted - set(catalog)) == []
