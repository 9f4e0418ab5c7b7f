"""Conversion benchmark: a 30-second wav through a full-size v2 40 kHz voice on the CPU.

Run from the repository root::

    python bench/convert_bench.py [--runs 3] [--f0-method rmvpe] [--threads N] [--json out.json]

The models are full-size but random (made by :mod:`bench_assets` into
``bench/.cache`` on the first run and reused).  Model loading is timed once
("load"); one warm-up conversion follows, then ``--runs`` timed ones of
``infer.convert_file`` (wav → wav, default settings: rmvpe, index rate 0.75,
RMS mix 0.25, protect 0.33).  Reported per stage: mean seconds, share of the
wall time, CPU seconds and peak RSS (see :mod:`stage_probe`); plus wall time, real-time
factor (wall / input length) and the overall peak.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_assets import INPUT_SECONDS, build_assets
from stage_probe import OUTSIDE, StageProbe, rss_bytes

from infer.audio import AudioWriter, audio_info, load_audio
from infer.cache import ModelCache
from infer.convert import Conversion, convert_array, convert_file, prepare
from infer.f0 import CREPE_VARIANTS, F0_METHODS
from infer.frames import SR_16K
from infer.params import ConvertParams
from infer.pipeline import STAGES, StageTimes

DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"
MIB = 1024 * 1024


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed conversions after the warm-up (default 3)")
    parser.add_argument("--f0-method", default="rmvpe", choices=F0_METHODS, help="pitch method (default rmvpe)")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where the models and input are kept")
    parser.add_argument("--rebuild", action="store_true", help="make the models and input again")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.threads < 0:
        parser.error("--threads must be 0 (torch's default) or more")
    return args


def load_models(assets, params: ConvertParams) -> Conversion:
    """Everything a conversion needs, loaded up front (the pitch network too, normally loaded on first use)."""
    cache = ModelCache(hubert_path=assets.hubert, rmvpe_path=assets.rmvpe, device="cpu")
    job = prepare(assets.voice, cache, params, index=assets.index)
    pitch = cache.pitch_models()
    if params.f0_method == "rmvpe":
        pitch.rmvpe()
    elif params.f0_method in CREPE_VARIANTS:
        pitch.crepe(CREPE_VARIANTS[params.f0_method])
    elif params.f0_method == "fcpe":
        pitch.fcpe()
    job.index.vectors()  # retrieval reads the stored vectors once per index; count that as loading
    return job


def convert_once(job: Conversion, source: Path, output: Path, times: StageTimes) -> float:
    """One ``convert_file`` call with ``times`` as its stage clock; returns the wall time in seconds."""
    start = time.perf_counter()
    if "times" in inspect.signature(convert_file).parameters:
        convert_file(job, source, output, overwrite=True, times=times)
    else:
        # convert_file has no ``times`` argument yet: run its whole-input path step by step.
        audio_info(source)
        with times.measure("decode"):
            audio = load_audio(source, SR_16K)
        result = convert_array(job, audio, times=times)
        with times.measure("write"):
            with AudioWriter(output, result.sample_rate, overwrite=True) as writer:
                writer.write(result.audio)
    return time.perf_counter() - start


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    assets = build_assets(args.cache_dir, rebuild=args.rebuild, log=lambda text: print(text, file=sys.stderr))
    output = args.cache_dir / "output.wav"
    params = ConvertParams(f0_method=args.f0_method)
    load_avg_before = os.getloadavg()

    with StageProbe() as load_probe:
        start = time.perf_counter()
        job = load_models(assets, params)
        load_seconds = time.perf_counter() - start
    convert_once(job, assets.input_wav, output, StageTimes())  # warm-up

    runs = []
    for _ in range(args.runs):
        probe = StageProbe()
        times = StageTimes(observer=probe)
        with probe:
            wall = convert_once(job, assets.input_wav, output, times)
        runs.append(
            {
                "wall": wall,
                "cpu": probe.cpu_total,
                "times": times.as_dict(),
                "stage_cpu": dict(probe.cpu),
                "peak": dict(probe.peak),
                "rise": dict(probe.rise),
                "overall_peak": probe.overall,
            }
        )
    return {
        "machine": machine_info(),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "settings": {
            "f0_method": params.f0_method,
            "index_rate": params.index_rate,
            "rms_mix_rate": params.rms_mix_rate,
            "protect": params.protect,
            "runs": args.runs,
            "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        },
        "input": {"seconds": INPUT_SECONDS, "kind": assets.input_kind, "file": str(assets.input_wav)},
        "load": {"seconds": load_seconds, "cpu_s": load_probe.cpu_total, "peak_rss": load_probe.overall},
        "load_average": {"before": load_avg_before, "after": os.getloadavg()},
        "summary": summarize(runs),
        "runs": runs,
        "process_peak_rss": rss_bytes("VmHWM"),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean seconds and share per stage ("other": wall time outside every stage), peaks over all runs."""
    walls = [run["wall"] for run in runs]
    mean_wall = statistics.fmean(walls)
    stages = {}
    for stage in (*STAGES, OUTSIDE):
        if stage == OUTSIDE:
            seconds = [run["wall"] - sum(run["times"].values()) for run in runs]
        else:
            seconds = [run["times"][stage] for run in runs]
        stages[stage] = {
            "mean_s": statistics.fmean(seconds),
            "cpu_s": statistics.fmean(run["stage_cpu"].get(stage, 0.0) for run in runs),
            "share": statistics.fmean(seconds) / mean_wall,
            "peak_rss": max(run["peak"].get(stage, 0) for run in runs),
            "max_rise": max(run["rise"].get(stage, 0) for run in runs),
        }
    return {
        "stages": stages,
        "wall_mean_s": mean_wall,
        "wall_best_s": min(walls),
        "wall_median_s": statistics.median(walls),
        "cpu_mean_s": statistics.fmean(run["cpu"] for run in runs),
        "rtf_mean": mean_wall / INPUT_SECONDS,
        "rtf_best": min(walls) / INPUT_SECONDS,
        "peak_rss": max(run["overall_peak"] for run in runs),
    }


def machine_info() -> dict[str, Any]:
    mem_total = _field("/proc/meminfo", "MemTotal", ":")
    return {
        "cpu": _field("/proc/cpuinfo", "model name", ":") or platform.processor(),
        "cores": os.cpu_count(),
        "ram_gib": round(int(mem_total.split()[0]) / 1024**2, 1) if mem_total else None,
        "os": f"{_field('/etc/os-release', 'PRETTY_NAME', '=').strip(chr(34)) or platform.system()} "
        f"(kernel {platform.release()})",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def _field(path: str, name: str, separator: str) -> str:
    """The value of the first ``name<separator>value`` line of a text file ("" if absent)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        key, found, value = line.partition(separator)
        if found and key.strip() == name:
            return value.strip()
    return ""


def format_report(result: dict[str, Any]) -> str:
    summary, machine = result["summary"], result["machine"]
    lines = [
        f"{machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB; Python {machine['python']}, "
        f"torch {machine['torch']} ({result['settings']['torch_threads']} threads"
        f"{', OMP_WAIT_POLICY=' + result['settings']['omp_wait_policy'] if result['settings']['omp_wait_policy'] else ''}"
        f"), numpy {machine['numpy']}",
        f"input: {result['input']['seconds']:g} s ({result['input']['kind']}), f0 {result['settings']['f0_method']}, "
        f"{result['settings']['runs']} runs; load average {result['load_average']['before'][0]:.2f} before, "
        f"{result['load_average']['after'][0]:.2f} after",
        "",
        "| stage | mean s | share | CPU s | peak RSS MiB | max rise MiB |",
        "|---|---:|---:|---:|---:|---:|",
        f"| load (once) | {result['load']['seconds']:.2f} | | {result['load']['cpu_s']:.2f} | "
        f"{result['load']['peak_rss'] / MIB:.0f} | |",
    ]
    for stage, row in summary["stages"].items():
        if stage == OUTSIDE and row["mean_s"] < 0.005:
            continue
        lines.append(
            f"| {stage} | {row['mean_s']:.2f} | {100 * row['share']:.1f}% | {row['cpu_s']:.2f} | "
            f"{row['peak_rss'] / MIB:.0f} | {row['max_rise'] / MIB:.0f} |"
        )
    lines += [
        f"| **total (wall)** | **{summary['wall_mean_s']:.2f}** | 100% | {summary['cpu_mean_s']:.2f} | "
        f"{summary['peak_rss'] / MIB:.0f} | |",
        "",
        f"wall: mean {summary['wall_mean_s']:.2f} s, median {summary['wall_median_s']:.2f} s, "
        f"best {summary['wall_best_s']:.2f} s; RTF mean {summary['rtf_mean']:.3f}, best {summary['rtf_best']:.3f}; "
        f"process peak RSS {result['process_peak_rss'] / MIB:.0f} MiB",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run_benchmark(args)
    print(format_report(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
