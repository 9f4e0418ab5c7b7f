"""The Gradio application: header, missing-assets banner, and the tabs Convert, Train, ckpt, Export, FAQ.

Each tab lives in ``webui/tabs/<name>.py`` and exposes ``build(ctx)``; this
module only lays them out.  A tab module that is not there yet (or fails to
import) is skipped with a log warning, and a tab whose ``build`` fails shows
the error instead of taking the whole UI down.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import shutil
import tempfile
from pathlib import Path
from types import ModuleType

import gradio as gr

from config import Settings
from infer.cache import ModelCache
from webui.conversion import OutputFolder
from webui.errors import name_fields_in_errors
from webui.localize import UILanguage
from webui.studio_context import StudioContext
from webui.tabs import assets

log = logging.getLogger("webui")

TABS = (
    ("convert", "webui.tabs.convert"),
    ("train", "webui.tabs.train"),
    ("ckpt", "webui.tabs.ckpt"),
    ("export", "webui.tabs.export"),
    ("faq", "webui.tabs.faq"),
)
TITLE = "RVC Studio"


def make_context(settings: Settings, ui: UILanguage, cache: ModelCache | None = None) -> StudioContext:
    """The per-server context: one model cache and one output folder (removed when the process exits)."""
    if cache is None:
        cache = ModelCache(
            hubert_path=settings.hubert_path, rmvpe_path=settings.rmvpe_path, device=settings.device, half=settings.half
        )
    folder = Path(tempfile.mkdtemp(prefix="rvc-studio-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return StudioContext(settings=settings, t=ui.label, cache=cache, ui=ui, outputs=OutputFolder(folder))


def load_tab(module_name: str) -> ModuleType | None:
    """The tab module, or None (with a warning) when it is missing or cannot be imported."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            log.warning("tab module %s is not there yet; its tab is skipped", module_name)
        else:
            log.warning("tab module %s needs %s, which is missing; its tab is skipped", module_name, exc.name)
        return None
    except Exception:
        log.exception("tab module %s failed to import; its tab is skipped", module_name)
        return None
    if not callable(getattr(module, "build", None)):
        log.warning("tab module %s has no build(ctx); its tab is skipped", module_name)
        return None
    return module


def build_ui(settings: Settings, ui: UILanguage | None = None, cache: ModelCache | None = None) -> gr.Blocks:
    """Build the app (not launched).  ``ui`` defaults to per-browser languages; launch with ``ui.gradio_i18n()``."""
    ui = ui or UILanguage.create(None)
    ctx = make_context(settings, ui, cache)
    with gr.Blocks(title=TITLE, delete_cache=(3600, 6 * 3600)) as app:
        gr.Markdown(ctx.t("app.header"), elem_id="app-header")
        assets.build_banner(ctx)
        with gr.Tabs(elem_id="main-tabs"):
            for name, module_name in TABS:
                module = load_tab(module_name)
                if module is None:
                    continue
                with gr.Tab(ctx.t(f"tab.{name}"), id=name, elem_id=f"tab-{name}"):
                    try:
                        module.build(ctx)
                    except Exception as exc:
                        log.exception("building the %s tab failed", name)
                        gr.Markdown(f"**{type(exc).__name__}:** {exc}")
        gr.Markdown(ctx.t("app.footer"), elem_id="app-footer")
    name_fields_in_errors(app, ui.translator)
    return app
