"""What the Train tab shows, computed without Gradio: progress bar HTML, loss-plot table, defaults.

Kept apart from :mod:`webui.tabs.train` so it can be tested as plain functions.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from infer.assets import pretrained_paths
from webui.jobs import JobSnapshot, JobState

PLOT_SERIES = ("loss/g/total", "loss/d/total", "loss/g/mel", "loss/g/kl", "loss/g/fm")
PLOT_POINTS = 400
SAMPLE_RATES = ("32k", "40k", "48k")  # RVC offered 32k for v2 only (and only after a toggle); both versions have it


def default_processes(n_cpu: int) -> int:
    """RVC's default for the CPU-processes slider: ceil(n_cpu / 1.5), at least 1."""
    return max(1, math.ceil(n_cpu / 1.5))


def pretrained_defaults(assets_dir: Path, version: str, sample_rate: str, use_f0: bool) -> tuple[str, str]:
    """Paths of the pretrained G and D for this model type; "" for a file that is not there (train from scratch)."""
    found = []
    for asset in pretrained_paths(version, sample_rate, use_f0):
        path = Path(assets_dir) / asset.relative_path
        found.append(str(path) if path.is_file() else "")
    return found[0], found[1]


def loss_table(records: Sequence[dict], series: Sequence[str] = PLOT_SERIES, points: int = PLOT_POINTS) -> pd.DataFrame:
    """Long-form table (``step``, ``loss``, ``value``) of the step records of ``metrics.jsonl`` for a line plot.

    More than ``points`` steps are averaged in equal bins, so the plot stays
    light however long the training.
    """
    steps = [r for r in records if r.get("kind", "step") == "step" and isinstance(r.get("step"), (int, float))]
    rows: list[tuple[float, str, float]] = []
    if steps:
        per_bin = max(1, math.ceil(len(steps) / points))
        for start in range(0, len(steps), per_bin):
            chunk = steps[start : start + per_bin]
            for name in series:
                values = [
                    float(r[name]) for r in chunk if isinstance(r.get(name), (int, float)) and math.isfinite(r[name])
                ]
                if values:
                    rows.append((float(chunk[-1]["step"]), name, sum(values) / len(values)))
    return pd.DataFrame(rows, columns=["step", "loss", "value"])


def progress_html(snapshot: JobSnapshot | None, t: Callable[[str], str]) -> str:
    """A ``<progress>`` bar with the job's state, step and message (empty bar when there is no job).

    ``t(key)`` gives texts in the viewer's language.
    """
    if snapshot is None:
        return f'<div class="rvc-progress" data-state="idle"><progress value="0" max="1"></progress> {html.escape(t("train.no_job"))}</div>'
    percent = round(100 * snapshot.overall)
    state = t(f"train.state_{snapshot.state.value}")
    step = f"{snapshot.step_index + 1}/{snapshot.step_count} {t('train.step_' + snapshot.step_label)}"
    detail = f" — {snapshot.message}" if snapshot.message and snapshot.message != snapshot.step_label else ""
    text = f"{state}: {step}{detail} ({percent}%)"
    return (
        f'<div class="rvc-progress" data-state="{snapshot.state.value}" data-progress="{snapshot.overall:.4f}">'
        f'<progress value="{snapshot.overall:.4f}" max="1"></progress> {html.escape(text)}</div>'
    )


def status_text(snapshot: JobSnapshot | None, say: Callable[..., str]) -> str:
    """The message-window line for a job that ended: ``say(key, **values)`` gives the viewer's language.

    A failure names the step, the exit status and the last error line of the log.
    """
    if snapshot is None:
        return say("train.no_job")
    if snapshot.state is not JobState.FAILED:
        return say(f"train.ended_{snapshot.state.value}", seconds=round(snapshot.elapsed))
    errors = [line for line in snapshot.log.splitlines() if line.lower().startswith(("error", "could not start"))]
    return say(
        "train.ended_failed",
        step=say("train.step_" + snapshot.step_label),
        code=snapshot.returncode,
        error=errors[-1] if errors else "",
    )
