"""Processes for training: one process, or several under ``torchrun`` (DDP), plus clean stop requests.

Under ``torchrun`` the rank comes from RANK / WORLD_SIZE / LOCAL_RANK and the
rendezvous from MASTER_ADDR / MASTER_PORT.  The backend is NCCL on CUDA and
gloo on the CPU (and on Windows).  Nothing here calls ``os._exit``: the
process group is destroyed and the caller returns normally.

A stop is requested by ``cancel()``, SIGINT/SIGTERM or a stop file; every rank
learns about it at the same step through :func:`any_rank`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from infer.devices import resolve_device


@dataclass(frozen=True)
class DistContext:
    """Where this process trains: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def init_distributed(device: str = "auto") -> DistContext:
    """Join torchrun's process group when WORLD_SIZE > 1, else describe a single process.

    Under torchrun each process uses ``cuda:LOCAL_RANK`` when CUDA is chosen.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    chosen = resolve_device(device)
    if world_size <= 1:
        return DistContext(0, 1, 0, chosen)
    if chosen.type == "cuda":
        chosen = resolve_device(f"cuda:{local_rank}")
        torch.cuda.set_device(chosen)
    elif chosen.type == "mps":
        raise ValueError("Several training processes cannot share Apple MPS; use one process or the CPU.")
    backend = "nccl" if chosen.type == "cuda" and sys.platform != "win32" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", world_size=world_size, rank=rank)
    return DistContext(rank, world_size, local_rank, chosen, backend)


def shutdown(ctx: DistContext, *, wait: bool = True) -> None:
    """Leave the process group.

    With ``wait`` (a normal end) the ranks meet first so that none tears down
    while another still saves; after an error they do not wait for each other.
    """
    if ctx.distributed and dist.is_initialized():
        try:
            if wait:
                dist.barrier()
        finally:
            dist.destroy_process_group()


def ignore_sigint_in_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: Ctrl+C reaches the whole process group; only the trainer handles it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def wrap(module: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around ``module`` when several processes train, else ``module``."""
    if not ctx.distributed:
        return module
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank if ``flag`` is true on any rank (one all-reduce when distributed)."""
    if not ctx.distributed:
        return bool(flag)
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=ctx.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


class StopRequest:
    """Collects stop requests: ``cancel()``, SIGINT/SIGTERM (main thread only) and a stop file.

    Use as a context manager: signal handlers are installed on entry and the
    previous ones restored on exit.  A second signal raises KeyboardInterrupt.
    """

    def __init__(self, stop_file: Path | None = None, cancel: Callable[[], bool] | None = None) -> None:
        self.stop_file = Path(stop_file) if stop_file else None
        self.cancel = cancel
        self._reason: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: object) -> None:
        if self._reason is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping without saving")
        self._reason = f"signal {signal.Signals(signum).name}"

    def request(self, reason: str) -> None:
        self._reason = self._reason or reason

    def reason(self) -> str | None:
        """Why a stop was requested on this rank, or None."""
        if self._reason is None and self.cancel is not None and self.cancel():
            self._reason = "cancel requested"
        if self._reason is None and self.stop_file is not None and self.stop_file.exists():
            self._reason = f"stop file '{self.stop_file}'"
        return self._reason
