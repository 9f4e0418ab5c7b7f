"""Import a voice from a zip (ours, or any app's): check it, then put its files where the UI finds them.

Nothing is trusted: entry names, sizes and compression are checked before
extraction (:mod:`infer.ckpt.zipsafe`), files are unpacked into a hidden
staging folder inside the weights folder, the model is loaded with the
weights-only loader, the index must fit the model, and only then are the
files moved into place: ``weights/<name>.pth``, ``assets/indices/<name>.index``
and ``weights/<name>.voice.json``.  On any error the staging folder is removed
and nothing else was touched.  An existing voice of the same name is never
replaced unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from infer.atomic import atomic_path
from infer.checkpoints import read_small_model
from infer.ckpt.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    MANIFEST_NAME,
    bundle_manifest,
    file_digest,
    sidecar_path,
    suggested_settings,
    write_voice_manifest,
)
from infer.ckpt.common import CkptError, Progress, default_indices_dir, default_weights_dir, report, safe_voice_name
from infer.ckpt.zipsafe import GiB, MiB, ZipMember, check_members, check_size, extract_member
from infer.url_policy import FetchError, Resolver, UrlRefusedError, fetch_url

MAX_MODEL_BYTES = 1 * GiB  # the largest RVC voices are ~230 MB
MAX_INDEX_BYTES = 8 * GiB  # an index of hours of speech
MAX_MANIFEST_BYTES = 1 * MiB
MAX_DOWNLOAD_BYTES = MAX_MODEL_BYTES + MAX_INDEX_BYTES + 64 * MiB  # the largest bundle worth fetching
_TRAINING_FILE = re.compile(r"^(?:[GD]_\d+|(?:f0)?[GD](?:32|40|48)k)\.pth$", re.I)
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")


@dataclass(frozen=True)
class FetchOptions:
    """How a URL source is fetched (see :mod:`infer.url_policy`).

    ``allow_private_urls`` lets the import fetch loopback/private/link-local
    addresses (off by default; the CLI, run by the machine's owner, turns it
    on; the web UI only with ``--allow-private-urls``).  ``max_bytes`` caps the
    download; ``resolver`` replaces DNS (tests).
    """

    allow_private_urls: bool = False
    max_bytes: int | None = MAX_DOWNLOAD_BYTES
    resolver: Resolver | None = None


class VoiceExistsError(CkptError):
    """A voice of that name exists; ask the user, then import with ``overwrite=True`` or another ``name``."""

    def __init__(self, name: str, existing: list[Path]) -> None:
        self.name, self.existing = name, existing
        super().__init__(
            f"A voice named '{name}' already exists ({', '.join(map(str, existing))}). Nothing was imported. "
            "Import it under another name, or allow replacing it (overwrite=True; CLI: --force)."
        )


@dataclass
class ImportedVoice:
    """Where an imported voice's files went, and its ``voice.json``."""

    name: str
    voice_path: Path
    index_path: Path | None
    manifest_path: Path
    manifest: dict[str, Any]
    from_bundle: bool  # True: an RVC Studio bundle with voice.json; False: another app's zip
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "voice": str(self.voice_path),
            "index": str(self.index_path) if self.index_path else None,
            "manifest": str(self.manifest_path),
            "from_bundle": self.from_bundle,
            "warnings": list(self.warnings),
        }


@dataclass
class _Plan:
    manifest: dict[str, Any] | None
    model: ZipMember
    index: ZipMember | None
    warnings: list[str]


def _is_junk(member: ZipMember) -> bool:
    return member.path.parts[0] == "__MACOSX" or member.name.startswith("._") or member.name == ".DS_Store"


def _read_manifest(zf: zipfile.ZipFile, member: ZipMember, zip_path: Path) -> dict[str, Any]:
    check_size(member, MAX_MANIFEST_BYTES, MANIFEST_NAME, zip_path)
    try:
        data = json.loads(zf.read(member.info).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise CkptError(f"'{zip_path}': its {MANIFEST_NAME} is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise CkptError(f"'{zip_path}': its {MANIFEST_NAME} is not a JSON object.")
    if data.get("format") == BUNDLE_FORMAT and int(data.get("format_version") or 0) > BUNDLE_FORMAT_VERSION:
        raise CkptError(
            f"'{zip_path}' was made by a newer RVC Studio (bundle format {data['format_version']}); "
            "update RVC Studio to import it."
        )
    if data.get("version") is not None and data["version"] not in ("v1", "v2"):
        raise CkptError(
            f"'{zip_path}' is for a model version {data['version']!r} that RVC Studio does not know "
            "(only v1 and v2 exist). Nothing was imported."
        )
    return data


def _find(members: list[ZipMember], path: PurePosixPath, what: str, zip_path: Path) -> ZipMember:
    for member in members:
        if member.path == path:
            return member
    raise CkptError(f"'{zip_path}': its {MANIFEST_NAME} names the {what} '{path}', which is not in the zip.")


def _plan(zf: zipfile.ZipFile, members: list[ZipMember], zip_path: Path, choice: str | None) -> _Plan:
    files = [m for m in members if not _is_junk(m)]
    manifests = sorted((m for m in files if m.name == MANIFEST_NAME), key=lambda m: len(m.path.parts))
    manifest = _read_manifest(zf, manifests[0], zip_path) if manifests else None
    base = manifests[0].path.parent if manifests else PurePosixPath()
    warnings: list[str] = []
    if manifest and manifest.get("model") and choice is None:
        model = _find(files, base / str(manifest["model"]), "model", zip_path)
    else:
        models = [m for m in files if m.name.lower().endswith(".pth") and not _TRAINING_FILE.match(m.name)]
        if choice is not None:
            models = [m for m in models if choice in (str(m.path), m.name, m.path.stem)]
        if not models:
            training = [m.name for m in files if _TRAINING_FILE.match(m.name)]
            hint = (
                (
                    f" It holds training checkpoints ({', '.join(training[:3])}): extract a voice from the G_ file "
                    "with ckpt → extract, then import that."
                )
                if training
                else ""
            )
            wanted = f" named '{choice}'" if choice else ""
            raise CkptError(f"'{zip_path}' holds no voice model (.pth){wanted}.{hint}")
        if len(models) > 1:
            names = ", ".join(str(m.path) for m in models[:6])
            raise CkptError(f"'{zip_path}' holds several models ({names}). Choose one (member=...; CLI: --member).")
        model = models[0]
    check_size(model, MAX_MODEL_BYTES, "voice model", zip_path)
    if manifest and "index" in manifest and choice is None:
        index = _find(files, base / str(manifest["index"]), "index", zip_path) if manifest["index"] else None
    else:
        indexes = [m for m in files if m.name.lower().endswith(".index") and not m.name.startswith("trained_")]
        indexes.sort(key=lambda m: (not m.name.startswith("added_"), model.path.stem not in m.name, str(m.path)))
        index = indexes[0] if indexes else None
        if len(indexes) > 1:
            warnings.append(f"The zip holds {len(indexes)} indexes; imported '{index.path}'.")
    if index is not None:
        check_size(index, MAX_INDEX_BYTES, "feature index", zip_path)
    return _Plan(manifest, model, index, warnings)


def _looks_like_url(text: str) -> bool:
    """``scheme:...`` that is not an existing file (one-letter schemes are Windows drive letters)."""
    return bool(_URL_SCHEME.match(text)) and not Path(text).is_file()


def _fetch(source: str | Path, staging: Path, progress: Progress | None, cancel, fetch: FetchOptions) -> Path:
    text = str(source).strip()
    if isinstance(source, str) and _looks_like_url(text):
        name = Path(unquote(urlsplit(text).path)).name or "voice.zip"
        dest = staging / ("download-" + re.sub(r"[^\w.\-]", "_", name))

        def on_bytes(done: int, total: int | None) -> None:
            report(progress, 0.4 * done / total if total else 0.0, f"downloading {name}")

        try:
            return fetch_url(
                text,
                dest,
                allow_private=fetch.allow_private_urls,
                max_bytes=fetch.max_bytes,
                resolver=fetch.resolver,
                progress=on_bytes,
                cancel=cancel,
            )
        except (UrlRefusedError, FetchError) as exc:
            raise CkptError(f"{exc} Nothing was imported.") from exc
    path = Path(source)
    if not path.is_file():
        raise CkptError(f"'{path}' does not exist or is not a file. Pass a .zip path or an http(s) URL.")
    return path


def _model_error(exc: Exception, staged: Path, member: ZipMember, zip_path: Path) -> CkptError:
    reason = str(exc).replace(str(staged), member.info.filename)
    return CkptError(
        f"Refused '{zip_path}': its model '{member.info.filename}' was rejected. {reason} Nothing was imported."
    )


def _place(staged: Path, target: Path) -> None:
    """Move a staged file into place atomically (copying when the target is on another file system)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(staged, target)
    except OSError:
        with atomic_path(target) as tmp:
            shutil.copyfile(staged, tmp)


def import_bundle(
    source: str | Path,
    *,
    name: str | None = None,
    member: str | None = None,
    weights_dir: str | Path | None = None,
    indices_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel=None,
    fetch: FetchOptions | None = None,
) -> ImportedVoice:
    """Import a voice from a ``.zip`` path or an http(s) URL (fetched as ``fetch`` says).

    Our bundles and other apps' zips (a ``.pth`` and an ``.index`` at any
    folder depth) both work; ``member`` picks the model in a zip that holds
    several.  The voice is named ``name``, else as its ``voice.json`` or its
    model file says.  Raises :class:`VoiceExistsError` when that voice exists
    (unless ``overwrite``), :class:`~infer.ckpt.zipsafe.UnsafeZipError` for a
    hostile zip, :class:`CkptError` for anything else; in every failure case
    nothing is left behind.  ``cancel()`` returning True stops a download.
    A URL must be http(s); by default it may not point at a local or private
    address and may not be larger than :data:`MAX_DOWNLOAD_BYTES`
    (:class:`FetchOptions`).
    """
    from infer.retrieval import FeatureIndex

    weights_dir = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    indices_dir = Path(indices_dir) if indices_dir is not None else default_indices_dir()
    weights_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=weights_dir))
    try:
        zip_path = _fetch(source, staging, progress, cancel, fetch or FetchOptions())
        report(progress, 0.4, f"checking {zip_path.name}")
        try:
            zf = zipfile.ZipFile(zip_path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise CkptError(f"'{source}' is not a readable zip file ({exc}).") from exc
        with zf:
            plan = _plan(zf, check_members(zf, zip_path), zip_path, member)
            manifest_name = (plan.manifest or {}).get("name")
            voice_name = safe_voice_name(name or (str(manifest_name) if manifest_name else plan.model.path.stem))
            voice_target = weights_dir / f"{voice_name}.pth"
            index_target = indices_dir / f"{voice_name}.index" if plan.index else None
            existing = [p for p in (voice_target, sidecar_path(voice_target), index_target) if p and p.exists()]
            if existing and not overwrite:
                raise VoiceExistsError(voice_name, existing)
            chosen = [plan.model, *([plan.index] if plan.index else [])]
            needed = sum(m.size for m in chosen)
            if shutil.disk_usage(staging).free < needed + 64 * MiB:
                raise CkptError(
                    f"Not enough free disk space in '{weights_dir}' to import '{zip_path.name}' "
                    f"({needed / MiB:.0f} MiB needed). Free some space and try again."
                )
            done = 0

            def on_bytes(count: int) -> None:
                nonlocal done
                done += count
                report(progress, min(0.85, 0.4 + 0.45 * done / max(needed, 1)), "unpacking")

            staged_model = extract_member(zf, plan.model, staging / "model.pth", zip_path, on_bytes)
            staged_index = (
                extract_member(zf, plan.index, staging / "index.index", zip_path, on_bytes) if plan.index else None
            )
        report(progress, 0.85, "checking the model")
        try:
            model = read_small_model(staged_model)
        except ValueError as exc:
            raise _model_error(exc, staged_model, plan.model, zip_path) from exc
        _check_manifest(plan, model, staged_model, staged_index, zip_path)
        if staged_index is not None:
            try:
                dim = FeatureIndex.load(staged_index).dim
            except ValueError as exc:
                raise CkptError(
                    f"Refused '{zip_path}': its index '{plan.index.info.filename}' is not a usable "
                    f"feature index ({exc}). Nothing was imported."
                ) from exc
            if dim != model.config.feature_dim:
                raise CkptError(
                    f"Refused '{zip_path}': its index '{plan.index.info.filename}' holds {dim}-dim features but the "
                    f"model uses {model.config.feature_dim}-dim ones, so they do not belong together. Nothing was imported."
                )
        manifest = _final_manifest(plan, model, voice_name, staged_model, staged_index)
        report(progress, 0.95, "installing")
        if staged_index is not None and index_target is not None:
            _place(staged_index, index_target)
        _place(staged_model, voice_target)
        manifest_path = write_voice_manifest(voice_target, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report(progress, 1.0, "done")
    warnings = [*plan.warnings, *model.warnings]
    return ImportedVoice(
        voice_name, voice_target, index_target, manifest_path, manifest, plan.manifest is not None, warnings
    )


def _check_manifest(plan: _Plan, model, staged_model: Path, staged_index: Path | None, zip_path: Path) -> None:
    """A ``voice.json`` that contradicts the files, or checksums that do not match, stop the import."""
    manifest = plan.manifest
    if not manifest:
        return
    claims = [("version", model.version), ("sample_rate", model.sample_rate), ("pitch_guidance", model.use_f0)]
    for key, actual in claims:
        if manifest.get(key) is not None and manifest[key] != actual:
            raise CkptError(
                f"Refused '{zip_path}': its {MANIFEST_NAME} says {key} = {manifest[key]!r} but the model "
                f"is {actual!r}. The bundle was altered or damaged. Nothing was imported."
            )
    files = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    for member, staged in ((plan.model, staged_model), (plan.index, staged_index)):
        expected = files.get(member.name) if member is not None else None
        if isinstance(expected, dict) and expected.get("sha256") and staged is not None:
            if file_digest(staged)["sha256"] != expected["sha256"]:
                raise CkptError(
                    f"Refused '{zip_path}': '{member.info.filename}' does not match the checksum in its "
                    f"{MANIFEST_NAME}. Download the bundle again. Nothing was imported."
                )


def _final_manifest(plan: _Plan, model, name: str, staged_model: Path, staged_index: Path | None) -> dict[str, Any]:
    files = {f"{name}.pth": file_digest(staged_model)}
    if staged_index is not None:
        files[f"{name}.index"] = file_digest(staged_index)
    index_file = f"{name}.index" if staged_index is not None else None
    if plan.manifest is None:
        suggested = suggested_settings(has_index=staged_index is not None)
        return bundle_manifest(
            model, name, model_file=f"{name}.pth", index_file=index_file, suggested=suggested, files=files
        )
    manifest = dict(plan.manifest)
    manifest.update(name=name, model=f"{name}.pth", index=index_file, files=files)
    return manifest
