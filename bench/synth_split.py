"""Where the synthesis time goes: CPU seconds per part of the synthesizer.

Run from the repository root after ``bench/convert_bench.py`` made its models::

    python bench/synth_split.py [--seconds 10] [--threads 1]

Runs ``Synthesizer.infer`` of the benchmark's full-size v2 40 kHz voice on
random features (one warm-up call, one timed call) and charges the calling
thread's CPU time to the text encoder, the flow, the decoder and, inside the
decoder, the NSF source and the resblocks of each upsampling stage.  With one
torch thread, thread CPU time is the work itself, even on a busy machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from infer import load_voice

DEFAULT_VOICE = Path(__file__).resolve().parent / ".cache" / "voice_v2_40k.pth"
FRAMES_PER_SECOND = 100


def _charge(totals: dict[str, float], name: str, module: nn.Module) -> None:
    started: list[float] = []

    def before(_module, _inputs) -> None:
        started.append(time.thread_time())

    def after(_module, _inputs, _output) -> None:
        totals[name] = totals.get(name, 0.0) + time.thread_time() - started.pop()

    module.register_forward_pre_hook(before)
    module.register_forward_hook(after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voice", type=Path, default=DEFAULT_VOICE, help="small model (default: the benchmark's)")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length to synthesize (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    if not args.voice.is_file():
        raise SystemExit(f"error: {args.voice} not found: run python bench/convert_bench.py first, or pass --voice")
    torch.set_num_threads(args.threads)
    synth = load_voice(args.voice).synthesizer
    totals: dict[str, float] = {}
    _charge(totals, "text encoder", synth.enc_p)
    _charge(totals, "flow", synth.flow)
    _charge(totals, "decoder (all)", synth.dec)
    _charge(totals, "decoder: NSF source", synth.dec.m_source)
    kernels = synth.dec.num_kernels
    for i, block in enumerate(synth.dec.resblocks):
        _charge(totals, f"decoder: resblocks, stage {i // kernels + 1}", block)

    frames = int(args.seconds * FRAMES_PER_SECOND)
    torch.manual_seed(0)
    phone = torch.randn(1, frames, synth.enc_p.emb_phone.in_features)
    lengths = torch.tensor([frames])
    pitch = torch.randint(1, 256, (1, frames))
    nsff0 = torch.rand(1, frames) * 200 + 100
    with torch.inference_mode():
        synth.infer(phone, lengths, pitch, nsff0)
        totals.clear()
        start = time.thread_time()
        synth.infer(phone, lengths, pitch, nsff0)
        total = time.thread_time() - start
    print(f"{total:.2f} CPU s for {args.seconds:g} s of audio ({args.threads} thread(s))")
    print("| part | CPU s | share |\n|---|---:|---:|")
    for name, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"| {name} | {seconds:.2f} | {100 * seconds / total:.1f}% |")


if __name__ == "__main__":
    main()
