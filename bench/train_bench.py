"""Seconds per training step of a full-size v2 40 kHz pitch model on the CPU.

Random weights (fresh initialisation) and random data made here, one D+G step
exactly as ``train.loop.fit`` runs it (``train.step.train_step``, fp32):

    python bench/train_bench.py                       # batch 1 and 4, 3 timed steps each
    python bench/train_bench.py --batch-sizes 1 --steps 5 --threads 2 --no-write

The result is printed and written to ``bench/.cache/train_bench.md`` (its text is the
"Training" section of ``docs/benchmarks.md``, one heading level up).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from infer.models.discriminators import build_discriminator
from infer.models.synthesizer import Synthesizer
from train.checkpointing import make_scheduler
from train.data import TrainingItem, collate
from train.experiment import ExperimentConfig
from train.spectrogram import Spectrogram
from train.step import (
    Precision,
    StepSettings,
    TrainState,
    discriminator_step,
    generator_forward,
    generator_step,
    make_optimizer,
)

REPO = Path(__file__).resolve().parents[1]


def random_items(config: ExperimentConfig, spectrogram: Spectrogram, count: int, seconds: float, seed: int):
    """Training items like the dataset makes them: harmonic audio, (T, 768) features, coarse and Hz pitch."""
    rng = np.random.default_rng(seed)
    sr, hop = config.sample_rate, config.data.hop_length
    items = []
    for _ in range(count):
        frames = int(seconds * sr) // hop
        t = np.arange(frames * hop) / sr
        f0 = 150 + 60 * np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 6))
        audio = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / sr) + 0.01 * rng.standard_normal(t.size)
        wave = torch.from_numpy(audio.astype(np.float32))
        f0_frames = torch.from_numpy(f0[::hop].astype(np.float32))
        items.append(
            TrainingItem(
                spec=spectrogram.linear(wave),
                wave=wave[None],
                phone=torch.from_numpy(rng.standard_normal((frames, config.model.feature_dim)).astype(np.float32)),
                pitch=torch.clamp((f0_frames / 4).long(), 1, 255),
                pitchf=f0_frames,
                speaker_id=0,
            )
        )
    return items


def time_steps(state: TrainState, settings: StepSettings, batch, warmup: int, steps: int) -> dict[str, list[float]]:
    """Per-step seconds for the generator pass, the D update, the G update and the whole step."""
    times: dict[str, list[float]] = {"forward": [], "d_step": [], "g_step": [], "total": []}
    for index in range(warmup + steps):
        start = time.perf_counter()
        gen = generator_forward(state, settings, batch)
        after_forward = time.perf_counter()
        discriminator_step(state, settings, gen)
        after_d = time.perf_counter()
        generator_step(state, settings, gen)
        end = time.perf_counter()
        if index >= warmup:
            for key, value in zip(times, (after_forward - start, after_d - after_forward, end - after_d, end - start)):
                times[key].append(value)
    return times


def machine_description() -> list[str]:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    mem = (
        next(
            (
                int(line.split()[1]) / 1024**2
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            ),
            0.0,
        )
        if Path("/proc/meminfo").exists()
        else 0.0
    )
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return [
        f"- CPU: {cpu or 'unknown'}, {os.cpu_count()} logical cores, {mem:.0f} GiB RAM",
        f"- OS: {platform.platform()}; Python {platform.python_version()}; torch {torch.__version__}; "
        f"numpy {np.__version__}",
        f"- torch threads: {torch.get_num_threads()}; load average at start: {load[0]:.1f}, {load[1]:.1f}, "
        f"{load[2]:.1f} (other jobs were running on this machine)",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per batch size")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each random training item")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / ".cache" / "train_bench.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = machine_description()
    config = ExperimentConfig.create("bench", "v2", 40000, True)
    spectrogram = Spectrogram.from_hparams(config.data)
    settings = StepSettings(
        spectrogram, config.model.segment_size, config.train.c_mel, config.train.c_kl, Precision("cpu"), True
    )
    rows = []
    for batch_size in args.batch_sizes:
        torch.manual_seed(0)
        net_g, net_d = Synthesizer.from_config(config.model), build_discriminator("v2")
        optim_g, optim_d = make_optimizer(net_g, config.train), make_optimizer(net_d, config.train)
        state = TrainState(
            net_g,
            net_d,
            optim_g,
            optim_d,
            make_scheduler(optim_g, config.train.lr_decay, 1),
            make_scheduler(optim_d, config.train.lr_decay, 1),
            settings.precision.make_scaler(),
        )
        batch = collate(random_items(config, spectrogram, batch_size, args.seconds, seed=batch_size))
        times = time_steps(state, settings, batch, args.warmup, args.steps)
        rows.append((batch_size, {k: statistics.median(v) for k, v in times.items()}, min(times["total"])))
        print(f"batch {batch_size}: {rows[-1][1]['total']:.2f} s/step (median of {args.steps})", flush=True)
    g_params = sum(p.numel() for p in net_g.parameters()) / 1e6
    d_params = sum(p.numel() for p in net_d.parameters()) / 1e6
    table = [
        "| batch | s/step (median) | s/step (best) | G forward | D update | G update | items/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for batch_size, median, best in rows:
        table.append(
            f"| {batch_size} | {median['total']:.2f} | {best:.2f} | {median['forward']:.2f} | "
            f"{median['d_step']:.2f} | {median['g_step']:.2f} | {batch_size / median['total']:.2f} |"
        )
    shares = [
        f"- batch {b}: G forward {m['forward'] / m['total']:.0%}, D update {m['d_step'] / m['total']:.0%}, "
        f"G update {m['g_step'] / m['total']:.0%} of the step"
        for b, m, _ in rows
    ]
    command = "python bench/train_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join(
        [
            "# Training benchmark (CPU)",
            "",
            f"One D+G training step (`train.step`: generator pass, discriminator update, generator update) of a "
            f"full-size v2 40 kHz pitch model (G {g_params:.1f} M parameters, D {d_params:.1f} M), fp32, random "
            f"weights and random {args.seconds:g}-s items, segment {config.model.segment_size} frames "
            f"({config.train.segment_size} samples). Data loading is not included (the dataset caches spectrograms).",
            "",
            "## Machine",
            "",
            *machine,
            "",
            "## Command",
            "",
            f"    {command.strip()}",
            "",
            "## Results",
            "",
            f"Median and best of {args.steps} timed steps after {args.warmup} warm-up step(s); the three stage columns "
            "are medians in seconds.",
            "",
            *table,
            "",
            "## Where the time goes",
            "",
            *shares,
            "",
            "## Notes",
            "",
            "- The D update runs the 9 sub-discriminators on real and generated audio and back-propagates through them; "
            "the G update runs them again (adversarial and feature-matching losses) and back-propagates through their "
            "activations into G, so the discriminator dominates the step although G is the model being trained.",
            "- In the G update D's weights are frozen: RVC also computed D's weight gradients there, which the next D "
            "update discards, so G's update is identical (tested) and the G update about halved in a one-step A/B run.",
            "- Thread count matters on a shared machine: with other jobs on both cores, torch's default of one thread "
            "per core spent most of its time waiting (several times slower); `--threads 1` measures the work itself. "
            "On an idle machine use the default.",
            "",
        ]
    )
    print("\n" + "\n".join(table))
    if not args.no_write:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
