"""One training step of RVC's VITS recipe (spec §6.4): generator pass, discriminator update, generator update.

State travels in :class:`TrainState`; each step function returns a dict of
named, detached 0-d tensors (``"loss/d/total"``, ``"loss/g/mel"``,
``"grad_norm_g"``, ...) using RVC's TensorBoard names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from infer.devices import default_half
from infer.models.commons import slice_segments
from train.data import Batch
from train.losses import discriminator_loss, feature_matching_loss, generator_adversarial_loss, kl_loss, mel_loss
from train.spectrogram import Spectrogram

Losses = dict[str, torch.Tensor]
# Called with "d" or "g" and the (unwrapped) model once its gradients are final, before the optimiser step.
GradientHook = Callable[[str, nn.Module], None]
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


@dataclass(frozen=True)
class Precision:
    """Autocast setting: ``dtype`` None means plain float32."""

    device_type: str
    dtype: torch.dtype | None = None

    @property
    def name(self) -> str:
        return {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[self.dtype]

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to ``dtype``, or nothing for fp32 (so devices without autocast support work too)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def make_scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, active only for fp16."""
        return torch.amp.GradScaler(self.device_type, enabled=self.dtype == torch.float16)


def resolve_precision(requested: str, device: torch.device, *, fp16_run: bool = True) -> Precision:
    """``"auto"``: bf16 autocast on CUDA GPUs that support it, else fp16 where it is fast, else fp32.

    CPU and MPS always train in fp32.  ``fp16_run=False`` (the experiment
    config) makes ``"auto"`` choose fp32.
    """
    choice = requested.strip().lower()
    if choice not in PRECISIONS:
        raise ValueError(f"Unknown precision {requested!r}; use one of {', '.join(PRECISIONS)}.")
    if device.type != "cuda":
        if choice in ("fp16", "bf16"):
            raise ValueError(f"{choice} training needs a CUDA GPU; on {device.type} use precision 'auto' or 'fp32'.")
        return Precision(device.type)
    if choice == "fp32" or (choice == "auto" and not fp16_run):
        return Precision("cuda")
    if choice == "bf16" or (choice == "auto" and torch.cuda.is_bf16_supported()):
        if not torch.cuda.is_bf16_supported():
            raise ValueError("This GPU does not support bf16; use precision 'fp16' or 'auto'.")
        return Precision("cuda", torch.bfloat16)
    if choice == "auto" and not default_half(device):
        return Precision("cuda")
    return Precision("cuda", torch.float16)


def unwrap(module: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the module itself)."""
    return getattr(module, "module", module)


@dataclass
class TrainState:
    """Everything that changes while training; ``net_g``/``net_d`` may be DDP-wrapped."""

    net_g: nn.Module
    net_d: nn.Module
    optim_g: torch.optim.Optimizer
    optim_d: torch.optim.Optimizer
    sched_g: torch.optim.lr_scheduler.LRScheduler
    sched_d: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    epoch: int = 1
    global_step: int = 0

    @property
    def generator(self) -> nn.Module:
        return unwrap(self.net_g)

    @property
    def discriminator(self) -> nn.Module:
        return unwrap(self.net_d)

    @property
    def learning_rate(self) -> float:
        return float(self.optim_g.param_groups[0]["lr"])


@dataclass(frozen=True)
class StepSettings:
    """Fixed per run: loss weights (c_mel 45, c_kl 1), segment length in frames, STFT, precision."""

    spectrogram: Spectrogram
    segment_frames: int
    c_mel: float
    c_kl: float
    precision: Precision
    use_f0: bool

    @property
    def hop_length(self) -> int:
        return self.spectrogram.hop_length


@dataclass
class GeneratorPass:
    """Generator output on a random ``segment_frames`` slice of each item.

    ``y_hat`` and ``real_wave`` (B, 1, segment·hop); ``real_mel`` and
    ``fake_mel`` (B, n_mels, segment) float32; prior/posterior terms for the KL;
    ``slice_starts`` (B,) the random start frame of each item's slice.
    """

    y_hat: torch.Tensor
    real_wave: torch.Tensor
    real_mel: torch.Tensor
    fake_mel: torch.Tensor
    kl_terms: tuple[torch.Tensor, ...]
    slice_starts: torch.Tensor | None = None


def make_optimizer(model: nn.Module, train_hp) -> torch.optim.AdamW:
    """RVC's AdamW: lr 1e-4, betas (0.8, 0.99), eps 1e-9, default weight decay (from ``train_hp``)."""
    return torch.optim.AdamW(model.parameters(), train_hp.learning_rate, betas=tuple(train_hp.betas), eps=train_hp.eps)


def grad_norm(parameters: Iterable[nn.Parameter]) -> torch.Tensor:
    """Total L2 norm of the gradients (RVC logs it; it never clips)."""
    norms = [torch.linalg.vector_norm(p.grad.detach().float()) for p in parameters if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


def generator_forward(state: TrainState, settings: StepSettings, batch: Batch) -> GeneratorPass:
    """Training forward of G (spec §5.8) plus the real/fake mels and the matching real audio slice."""
    with settings.precision.autocast():
        y_hat, ids, _, z_mask, (_, z_p, m_p, logs_p, _, logs_q) = state.net_g(
            batch.phone, batch.phone_lengths, batch.pitch, batch.pitchf, batch.spec, batch.spec_lengths, batch.sid
        )
    # mels in float32, outside autocast (RVC computes the real one in fp16 under autocast)
    spec_slice = slice_segments(batch.spec.float(), ids, settings.segment_frames)
    real_mel = settings.spectrogram.mel_from_linear(spec_slice)
    fake_mel = settings.spectrogram.mel(y_hat.float().squeeze(1))
    real_wave = slice_segments(batch.wave, ids * settings.hop_length, settings.segment_frames * settings.hop_length)
    return GeneratorPass(y_hat, real_wave, real_mel, fake_mel, (z_p, logs_q, m_p, logs_p, z_mask), ids.detach())


def discriminator_step(
    state: TrainState, settings: StepSettings, gen: GeneratorPass, on_gradients: GradientHook | None = None
) -> Losses:
    """Update D on real audio vs the detached generator output (LSGAN); returns its losses and grad norm."""
    with settings.precision.autocast():
        real_scores, fake_scores, _, _ = state.net_d(gen.real_wave, gen.y_hat.detach())
    total, real_terms, fake_terms = discriminator_loss(real_scores, fake_scores)
    state.optim_d.zero_grad(set_to_none=True)
    state.scaler.scale(total).backward()
    state.scaler.unscale_(state.optim_d)
    norm = grad_norm(state.net_d.parameters())
    if on_gradients is not None:
        on_gradients("d", state.discriminator)
    state.scaler.step(state.optim_d)
    losses: Losses = {"loss/d/total": total.detach(), "grad_norm_d": norm}
    losses.update({f"loss/d_r/{i}": t.detach() for i, t in enumerate(real_terms)})
    losses.update({f"loss/d_g/{i}": t.detach() for i, t in enumerate(fake_terms)})
    return losses


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` with its parameters excluded from autograd (restored afterwards)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for param in params:
        param.requires_grad_(False)
    try:
        yield module
    finally:
        for param in params:
            param.requires_grad_(True)


def generator_step(
    state: TrainState, settings: StepSettings, gen: GeneratorPass, on_gradients: GradientHook | None = None
) -> Losses:
    """Update G: adversarial + 2·feature matching + c_mel·mel L1 + c_kl·KL; returns the terms and grad norm.

    D runs with frozen weights (unwrapped from DDP): RVC also computed D's weight
    gradients here, but the next D step zeroes them unused, so G's update is the same.
    """
    with _frozen(state.discriminator) as net_d:
        with settings.precision.autocast():
            _, fake_scores, real_maps, fake_maps = net_d(gen.real_wave, gen.y_hat)
        loss_mel = mel_loss(gen.real_mel, gen.fake_mel, settings.c_mel)
        loss_kl = kl_loss(*gen.kl_terms, c_kl=settings.c_kl)
        loss_fm = feature_matching_loss(real_maps, fake_maps)
        loss_gen, gen_terms = generator_adversarial_loss(fake_scores)
        total = loss_gen + loss_fm + loss_mel + loss_kl
        state.optim_g.zero_grad(set_to_none=True)
        state.scaler.scale(total).backward()
    state.scaler.unscale_(state.optim_g)
    norm = grad_norm(state.net_g.parameters())
    if on_gradients is not None:
        on_gradients("g", state.generator)
    state.scaler.step(state.optim_g)
    state.scaler.update()
    losses: Losses = {
        "loss/g/total": total.detach(),
        "loss/g/gen": loss_gen.detach(),
        "loss/g/fm": loss_fm.detach(),
        "loss/g/mel": loss_mel.detach(),
        "loss/g/kl": loss_kl.detach(),
        "grad_norm_g": norm,
    }
    losses.update({f"loss/g/{i}": t.detach() for i, t in enumerate(gen_terms)})
    return losses


def train_step(
    state: TrainState, settings: StepSettings, batch: Batch, *, on_gradients: GradientHook | None = None
) -> tuple[Losses, GeneratorPass]:
    """One D update then one G update on ``batch`` (already on the device); advances ``global_step``.

    ``on_gradients`` (optional) sees each model's unscaled gradients right before its optimiser step.
    """
    gen = generator_forward(state, settings, batch)
    losses = discriminator_step(state, settings, gen, on_gradients)
    losses.update(generator_step(state, settings, gen, on_gradients))
    state.global_step += 1
    return losses, gen
