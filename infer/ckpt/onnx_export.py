"""Export a voice's synthesizer to ONNX for onnxruntime (RVC's "Export Onnx" tab, spec §5.11).

Inputs keep RVC's names, so programs written for RVC's exports run ours:

========================  =====================  ==========================================
name                      shape, dtype           meaning
========================  =====================  ==========================================
``phone``                 (1, T, 256|768) f32    content features at 100 frames/s
``phone_lengths``         (1,) int64             T
``pitch`` (pitch models)  (1, T) int64           coarse pitch 1..255
``pitchf`` (pitch models) (1, T) f32             f0 in Hz, 0 = unvoiced
``ds``                    (1,) int64             speaker id
``rnd``                   (1, inter, T) f32      prior noise, **already scaled**: 0.66666·N(0, 1)
========================  =====================  ==========================================

Output ``audio`` (1, 1, T·hop) f32 at the voice's rate.  RVC's own demo fed
unscaled N(0, 1) noise to ``rnd`` (1.5× too much); the exported file states the
expected noise in its metadata and :meth:`OnnxExport.example_inputs` builds it.
The legacy TorchScript exporter is used: it runs offline on the CPU without
extra packages.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infer.atomic import atomic_path
from infer.checkpoints import SmallModel, read_small_model
from infer.ckpt.common import CkptError, Progress, check_writable, output_for, report
from infer.ckpt.onnx_graph import export_module
from infer.models.synthesizer import Synthesizer

NOISE_SCALE = 0.66666
DEFAULT_OPSET = 17
_TRACE_FRAMES = 16  # example length used while tracing (above the attention window); any length works afterwards
NOISE_NOTE = (
    "rnd must be standard normal noise already multiplied by 0.66666 (rnd = 0.66666 * N(0,1), shape "
    "(1, {inter}, T)), as PyTorch inference draws it; zeros give deterministic output. Do not feed unscaled N(0,1)."
)


@dataclass(frozen=True)
class OnnxTensor:
    """One input or output of the exported graph (``shape`` uses ``"T"`` for the frame axis)."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str
    meaning: str


@dataclass
class OnnxExport:
    """An exported voice: where it is, what it expects and what it returns."""

    path: Path
    sample_rate: int
    version: str
    use_f0: bool
    feature_dim: int
    inter_channels: int
    hop_length: int
    opset: int
    nsf_noise: bool
    inputs: list[OnnxTensor] = field(default_factory=list)
    output: OnnxTensor | None = None

    @property
    def noise_input(self) -> str:
        """What to feed ``rnd`` (the reference's demo got this wrong)."""
        return NOISE_NOTE.format(inter=self.inter_channels)

    def text(self) -> str:
        """Readable description: file, rate, inputs with shapes, output, and the noise rule."""
        lines = [
            f"ONNX model: {self.path} (opset {self.opset}, {self.version}, {self.sample_rate} Hz, "
            f"{'with' if self.use_f0 else 'without'} pitch)",
            "inputs:",
        ]
        lines += [f"  {t.name:<14}{str(t.shape):<22}{t.dtype:<8}{t.meaning}" for t in self.inputs]
        if self.output:
            lines.append(
                f"output:\n  {self.output.name:<14}{str(self.output.shape):<22}{self.output.dtype:<8}"
                f"{self.output.meaning}"
            )
        lines.append(f"noise: {self.noise_input}")
        if self.nsf_noise and self.use_f0:
            lines.append("The pitch source adds its own random noise inside the graph, as in PyTorch.")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["noise_input"] = self.noise_input
        return data

    def example_inputs(
        self, frames: int, *, seed: int = 0, f0_hz: float = 220.0, speaker: int = 0, noise_scale: float = NOISE_SCALE
    ) -> dict[str, np.ndarray]:
        """Inputs for ``frames`` frames: random features, a steady ``f0_hz`` pitch and correctly scaled noise."""
        from infer.f0 import coarse_f0

        rng = np.random.default_rng(seed)
        feeds: dict[str, np.ndarray] = {
            "phone": rng.standard_normal((1, frames, self.feature_dim)).astype(np.float32),
            "phone_lengths": np.array([frames], np.int64),
        }
        if self.use_f0:
            f0 = np.full((1, frames), f0_hz, np.float32)
            feeds["pitch"] = np.asarray(coarse_f0(f0), np.int64).reshape(1, frames)
            feeds["pitchf"] = f0
        feeds["ds"] = np.array([speaker], np.int64)
        feeds["rnd"] = (noise_scale * rng.standard_normal((1, self.inter_channels, frames))).astype(np.float32)
        return feeds


def _tensors(model: SmallModel) -> tuple[list[OnnxTensor], OnnxTensor]:
    cfg = model.config
    inputs = [
        OnnxTensor("phone", (1, "T", cfg.feature_dim), "float32", "content features, 100 frames/s"),
        OnnxTensor("phone_lengths", (1,), "int64", "number of frames T"),
    ]
    if model.use_f0:
        inputs += [
            OnnxTensor("pitch", (1, "T"), "int64", "coarse pitch 1..255"),
            OnnxTensor("pitchf", (1, "T"), "float32", "f0 in Hz (0 = unvoiced)"),
        ]
    inputs += [
        OnnxTensor("ds", (1,), "int64", f"speaker id 0..{model.n_speakers - 1}"),
        OnnxTensor("rnd", (1, cfg.inter_channels, "T"), "float32", "prior noise, pre-scaled (see noise)"),
    ]
    output = OnnxTensor("audio", (1, 1, f"T*{cfg.hop_length}"), "float32", f"audio at {cfg.sample_rate} Hz, -1..1")
    return inputs, output


def _trace_inputs(model: SmallModel, frames: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    cfg = model.config
    phone = torch.randn(1, frames, cfg.feature_dim, generator=generator)
    lengths = torch.tensor([frames], dtype=torch.long)
    speaker = torch.zeros(1, dtype=torch.long)
    rnd = torch.randn(1, cfg.inter_channels, frames, generator=generator) * NOISE_SCALE
    if not model.use_f0:
        return phone, lengths, speaker, rnd
    pitch = torch.randint(1, 256, (1, frames), generator=generator)
    pitchf = torch.rand(1, frames, generator=generator) * 400 + 50
    return phone, lengths, pitch, pitchf, speaker, rnd


def _add_metadata(path: Path, export: OnnxExport) -> None:
    import onnx

    graph_model = onnx.load(str(path))
    props = {
        "rvc_studio.format": "1",
        "sample_rate": str(export.sample_rate),
        "version": export.version,
        "use_f0": str(int(export.use_f0)),
        "feature_dim": str(export.feature_dim),
        "hop_length": str(export.hop_length),
        "noise_input": export.noise_input,
        "noise_scale": str(NOISE_SCALE),
        "nsf_noise_in_graph": str(int(export.nsf_noise and export.use_f0)),
    }
    for key, value in props.items():
        entry = graph_model.metadata_props.add()
        entry.key, entry.value = key, value
    graph_model.doc_string = f"RVC voice synthesizer ({export.version}, {export.sample_rate} Hz). {export.noise_input}"
    docs = {t.name: t.meaning for t in export.inputs}
    for value in graph_model.graph.input:
        value.doc_string = docs.get(value.name, "")
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(path))


def export_onnx(
    voice: str | Path | SmallModel,
    output: str | Path | None = None,
    *,
    name: str | None = None,
    weights_dir: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    nsf_noise: bool = True,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> OnnxExport:
    """Export ``voice`` (a small-model path or :class:`SmallModel`) to an ``.onnx`` file, float32, written atomically.

    ``output``: a path, or a name placed in ``weights_dir``; ``name`` instead is
    only ever a file name in ``weights_dir``; default beside the voice as
    ``<voice>.onnx``.  ``nsf_noise=False`` leaves the pitch source's
    random noise out of the graph (fully deterministic output for a given
    ``rnd``).  Returns an :class:`OnnxExport` describing the inputs and the
    noise ``rnd`` expects.  Raises :class:`CkptError` if the export fails.
    """
    try:
        import onnx  # noqa: F401  (checked early: the exporter needs it)
    except ImportError as exc:
        raise CkptError("ONNX export needs the 'onnx' package: pip install onnx") from exc
    source = None if isinstance(voice, SmallModel) else Path(voice)
    report(progress, 0.0, "reading the voice")
    model = voice if isinstance(voice, SmallModel) else read_small_model(source)
    if output is None and name is None and source is not None and weights_dir is None:
        path = source.with_suffix(".onnx")
    else:
        path = output_for(output, name, source.stem if source else "voice", weights_dir, suffix=".onnx")
    check_writable(path, overwrite)
    synthesizer = Synthesizer.from_config(model.config, with_posterior=False)
    synthesizer.load_state_dict({k: v.float() for k, v in model.weight.items()}, strict=True)
    synthesizer.remove_weight_norm()
    module = export_module(synthesizer.eval(), nsf_noise=nsf_noise)
    inputs, output_spec = _tensors(model)
    names = [t.name for t in inputs]
    dynamic = {name: [1] for name in ("phone", "pitch", "pitchf") if name in names}
    dynamic.update(rnd=[2], audio=[2])
    result = OnnxExport(
        path,
        model.sample_rate,
        model.version,
        model.use_f0,
        model.config.feature_dim,
        model.config.inter_channels,
        model.config.hop_length,
        opset,
        nsf_noise,
        inputs,
        output_spec,
    )
    report(progress, 0.2, "tracing the synthesizer")
    with atomic_path(path) as tmp:
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
                torch.onnx.export(
                    module,
                    _trace_inputs(model, _TRACE_FRAMES),
                    str(tmp),
                    dynamo=False,
                    input_names=names,
                    output_names=["audio"],
                    dynamic_axes=dynamic,
                    opset_version=opset,
                    do_constant_folding=True,
                )
            report(progress, 0.8, "checking the graph")
            _add_metadata(tmp, result)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise CkptError(f"Exporting '{source or 'the voice'}' to ONNX failed: {exc}") from exc
    report(progress, 1.0, "done")
    return result
