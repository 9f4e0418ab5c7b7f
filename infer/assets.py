"""Registry of the external files RVC needs (content encoder, RMVPE, pretrained G/D).

Every file lives at ``<assets dir>/<relative_path>`` and is published in the
Hugging Face repository ``lj1995/VoiceConversionWebUI`` at ``<url_path>``.
Callers ask this module for paths (:func:`asset_path`, :func:`pretrained_paths`)
instead of building path strings by hand.  Downloading is done by
:mod:`infer.download`.

Where the sizes and SHA-256 digests come from (no value here is guessed):

* SHA-256 of all 26 files: the upstream project's own pins, read by its asset
  checker ``infer/lib/rvcmd.py`` -- repository
  ``RVC-Project/Retrieval-based-Voice-Conversion-WebUI``, file ``.env``
  (``sha256_hubert_base_pt``, ``sha256_rmvpe_pt``, ``sha256_v1_*``, ``sha256_v2_*``).
  Independently confirmed, all 25 non-HuBERT values identical, by the Nix pins
  (``fetchurl`` hashes at Hugging Face revision e6d0c1a17da07c33557852f9dfa2bd44cc75737d)
  in ``Ruixi-rebirth/rvc.nix``, file ``nix/models.nix``.
* Sizes of ``rmvpe.pt`` and of the 12 ``f0`` pretrained files: ``yasoukyoku/UtaiSynthesizer``,
  file ``src-tauri/src/commands/assets.rs`` (``RVC_TRAIN_FILES``; its digests equal the
  ones above).  ``rmvpe.pt`` = 181,184,272 bytes is also given by several other
  pinned download manifests in public repositories.
* Size of ``hubert_base.pt`` (189,507,909 bytes): several public download manifests
  that pin it together with the digest above (Hugging Face revisions
  1c75048c96f23f99da4b12909b532b5983290d7d and 88e42f0cb3662ddc0dd263a4814206ce96d53214
  among others); the search index did not expose their repository names.
* Sizes of the 12 pretrained files *without* f0 (``{G,D}{32k,40k,48k}.pth`` in
  both folders) were not found in a source we could name, so they are ``None``;
  those files are still verified by SHA-256.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

DEFAULT_BASE_URL = "https://huggingface.co/lj1995/VoiceConversionWebUI/resolve/main/"
MIRROR_BASE_URL = "https://hf-mirror.com/lj1995/VoiceConversionWebUI/resolve/main/"
ASSETS_DIR_ENV = "RVC_ASSETS_DIR"

VERSIONS = ("v1", "v2")
SAMPLE_RATES = (32000, 40000, 48000)
_VERSION_FOLDERS = {"v1": "pretrained", "v2": "pretrained_v2"}


@dataclass(frozen=True)
class Asset:
    """One downloadable file.

    ``relative_path`` is under the assets folder (``"hubert/hubert_base.pt"``),
    ``url_path`` is the path inside the Hugging Face repository.  ``size`` (bytes)
    and ``sha256`` (64 lower-case hex digits) are ``None`` when unknown.
    """

    key: str
    relative_path: str
    url_path: str
    size: int | None
    sha256: str | None
    description: str

    @property
    def filename(self) -> str:
        """The file's base name, e.g. ``"f0G40k.pth"``."""
        return self.relative_path.rsplit("/", 1)[-1]

    def url(self, base_url: str | None = None) -> str:
        """Download URL under ``base_url`` (default :data:`DEFAULT_BASE_URL`)."""
        base = (base_url or DEFAULT_BASE_URL).rstrip("/")
        return f"{base}/{quote(self.url_path)}"


def _pretrained_name(use_f0: bool, kind: str, rate: int) -> str:
    return f"{'f0' if use_f0 else ''}{kind}{rate // 1000}k"


# (size, sha256) per pretrained file, keyed by "<folder>/<name>".
_PRETRAINED_FACTS: dict[str, tuple[int | None, str]] = {
    "pretrained/D32k": (None, "2ab20645829460fdad0d3c44254f1ab53c32cae50c22a66c926ae5aa30abda6f"),
    "pretrained/D40k": (None, "547f66dbbcd9023b9051ed244d12ab043ba8a4e854b154cc28761ac7c002909b"),
    "pretrained/D48k": (None, "8cc013fa60ed9c3f902f5bd99f48c7e3b9352d763d4d3cd6bc241c37b0bfd9ad"),
    "pretrained/G32k": (None, "81817645cde7ed2e2d83f23ef883f33dda564924b497e84d792743912eca4c23"),
    "pretrained/G40k": (None, "e428573bda1124b0ae0ae843fd8dcded6027d3993444790b3e9b0100938b2113"),
    "pretrained/G48k": (None, "3862a67ea6313e8ffefc05cee6bee656ef3e089442e9ecf4a6618d60721f3e95"),
    "pretrained/f0D32k": (109_978_943, "294db3087236e2c75260d6179056791c9231245daf5d0485545d9e54c4057c77"),
    "pretrained/f0D40k": (109_978_943, "7d4f5a441594b470d67579958b2fd4c6b992852ded28ff9e72eda67abcebe423"),
    "pretrained/f0D48k": (109_978_943, "1b84c8bf347ad1e539c842e8f2a4c36ecd9e7fb23c16041189e4877e9b07925c"),
    "pretrained/f0G32k": (72_795_627, "285f524bf48bb692c76ad7bd0bc654c12bd9e5edeb784dddf7f61a789a608574"),
    "pretrained/f0G40k": (72_909_665, "9115654aeef1995f7dd3c6fc4140bebbef0ca9760bed798105a2380a34299831"),
    "pretrained/f0G48k": (73_008_619, "78bc9cab27e34bcfc194f93029374d871d8b3e663ddedea32a9709e894cc8fe8"),
    "pretrained_v2/D32k": (None, "d8043378cc6619083d385f5a045de09b83fb3bf8de45c433ca863b71723ac3ca"),
    "pretrained_v2/D40k": (None, "471378e894e7191f89a94eda8288c5947b16bbe0b10c3f1f17efdb7a1d998242"),
    "pretrained_v2/D48k": (None, "db01094a93c09868a278e03dafe8bb781bfcc1a5ba8df168c948bf9168c84d82"),
    "pretrained_v2/G32k": (None, "869b26a47f75168d6126f64ac39e6de5247017a8658cfd68aca600f7323efb9f"),
    "pretrained_v2/G40k": (None, "a3843da7fde33db1dab176146c70d6c2df06eafe9457f4e3aa10024e9c6a4b69"),
    "pretrained_v2/G48k": (None, "2e2b1581a436d07a76b10b9d38765f64aa02836dc65c7dee1ce4140c11ea158b"),
    "pretrained_v2/f0D32k": (142_875_703, "bd7134e7793674c85474d5145d2d982e3c5d8124fc7bb6c20f710ed65808fa8a"),
    "pretrained_v2/f0D40k": (142_875_703, "6b6ab091e70801b28e3f41f335f2fc5f3f35c75b39ae2628d419644ec2b0fa09"),
    "pretrained_v2/f0D48k": (142_875_703, "2269b73c7a4cf34da09aea99274dabf99b2ddb8a42cbfb065fb3c0aa9a2fc748"),
    "pretrained_v2/f0G32k": (73_950_049, "2332611297b8d88c7436de8f17ef5f07a2119353e962cd93cda5806d59a1133d"),
    "pretrained_v2/f0G40k": (73_106_273, "3b2c44035e782c4b14ddc0bede9e2f4a724d025cd073f736d4f43708453adfcb"),
    "pretrained_v2/f0G48k": (75_465_569, "b5d51f589cc3632d4eae36a315b4179397695042edc01d15312e1bddc2b764a4"),
}


def _build_registry() -> dict[str, Asset]:
    table = {
        "hubert_base": Asset(
            key="hubert_base",
            relative_path="hubert/hubert_base.pt",
            url_path="hubert_base.pt",
            size=189_507_909,
            sha256="f54b40fd2802423a5643779c4861af1e9ee9c1564dc9d32f54f20b5ffba7db96",
            description="content encoder (ContentVec in a fairseq HuBERT-base checkpoint), 16 kHz input",
        ),
        "rmvpe": Asset(
            key="rmvpe",
            relative_path="rmvpe/rmvpe.pt",
            url_path="rmvpe.pt",
            size=181_184_272,
            sha256="6d62215f4306e3ca278246188607209f09af3dc77ed4232efdd069798c4ec193",
            description="RMVPE pitch estimator (16 kHz, 10 ms hop)",
        ),
    }
    for version, folder in _VERSION_FOLDERS.items():
        for use_f0 in (True, False):
            for kind in ("G", "D"):
                for rate in SAMPLE_RATES:
                    key = f"{folder}/{_pretrained_name(use_f0, kind, rate)}"
                    size, digest = _PRETRAINED_FACTS[key]
                    role = "generator" if kind == "G" else "discriminator"
                    pitch = "with f0" if use_f0 else "without f0"
                    table[key] = Asset(
                        key=key,
                        relative_path=f"{key}.pth",
                        url_path=f"{key}.pth",
                        size=size,
                        sha256=digest,
                        description=f"{version} pretrained {role}, {rate // 1000} kHz, {pitch}",
                    )
    return table


ASSETS: dict[str, Asset] = _build_registry()

GROUPS: dict[str, tuple[str, ...]] = {
    "hubert": ("hubert_base",),
    "rmvpe": ("rmvpe",),
    "pretrained": tuple(k for k in ASSETS if k.startswith("pretrained/")),
    "pretrained_v2": tuple(k for k in ASSETS if k.startswith("pretrained_v2/")),
    "essential": ("hubert_base", "rmvpe", "pretrained_v2/f0G40k", "pretrained_v2/f0D40k"),
    "all": tuple(ASSETS),
}


def select_assets(names: Iterable[str]) -> list[Asset]:
    """Assets named by keys and/or group names, in order, without duplicates.

    Raises ``KeyError`` naming the unknown entry and listing the valid names.
    """
    chosen: dict[str, Asset] = {}
    for name in names:
        if name in GROUPS:
            keys: tuple[str, ...] = GROUPS[name]
        elif name in ASSETS:
            keys = (name,)
        else:
            raise KeyError(
                f"unknown asset or group '{name}'. Groups: {', '.join(GROUPS)}. "
                "Run 'python tools/download_models.py --list' to see every asset key."
            )
        for key in keys:
            chosen.setdefault(key, ASSETS[key])
    return list(chosen.values())


def _parse_sample_rate(sample_rate: int | str) -> int:
    text = str(sample_rate).strip().lower()
    try:
        rate = int(text[:-1]) * 1000 if text.endswith("k") else int(text)
    except ValueError:
        rate = -1
    if rate not in SAMPLE_RATES:
        raise ValueError(
            f"sample rate must be one of 32000, 40000, 48000 (or '32k', '40k', '48k'), got {sample_rate!r}"
        )
    return rate


def pretrained_paths(version: str, sample_rate: int | str, use_f0: bool) -> tuple[Asset, Asset]:
    """The pretrained (generator, discriminator) for a model type.

    Follows RVC's naming rule: ``pretrained{"" | "_v2"}/{"f0" | ""}{G|D}{32k|40k|48k}.pth``.
    ``sample_rate`` is 32000/40000/48000 or "32k"/"40k"/"48k"; ``version`` is "v1" or "v2".
    """
    if version not in _VERSION_FOLDERS:
        raise ValueError(f"version must be 'v1' or 'v2', got {version!r}")
    rate = _parse_sample_rate(sample_rate)
    folder = _VERSION_FOLDERS[version]
    generator = ASSETS[f"{folder}/{_pretrained_name(use_f0, 'G', rate)}"]
    discriminator = ASSETS[f"{folder}/{_pretrained_name(use_f0, 'D', rate)}"]
    return generator, discriminator


def assets_dir() -> Path:
    """The assets folder: ``$RVC_ASSETS_DIR`` if set, else ``<repo root>/assets``.

    The repo root is the parent of the ``infer`` package.
    """
    override = os.environ.get(ASSETS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent / "assets"


def asset_path(key: str | Asset, root: str | os.PathLike[str] | None = None) -> Path:
    """Where an asset lives on disk (``root`` defaults to :func:`assets_dir`)."""
    asset = key if isinstance(key, Asset) else ASSETS[key]
    base = Path(root) if root is not None else assets_dir()
    return base / asset.relative_path


def missing_assets(keys: Iterable[str] | None = None, root: str | os.PathLike[str] | None = None) -> list[Asset]:
    """Assets (keys or group names; default: all) that are absent or have the wrong size.

    A cheap check: files are not hashed here; :func:`infer.download.download_file`
    verifies SHA-256 when it downloads or re-checks a file.
    """
    selected = select_assets(keys) if keys is not None else list(ASSETS.values())
    missing = []
    for asset in selected:
        path = asset_path(asset, root)
        if not path.is_file() or (asset.size is not None and path.stat().st_size != asset.size):
            missing.append(asset)
    return missing
