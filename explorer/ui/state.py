"""What the app keeps per server and per session: the libraries imported once, the workspace of this session (and
the sample's first build). A page's own values, the researcher's context and the URL are explorer/ui/session.py's."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

import streamlit as st

from ..background import SAMPLE_CONFIG, SAMPLE_WORKSPACE, BackgroundBuild
from ..pages import PAGES  # noqa: F401  (the page registry: app.py and the pages read it from here)
from ..workspace import Workspace, WorkspaceError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WORKSPACE = SAMPLE_WORKSPACE
ENV_WORKSPACE = "EXPLORER_WORKSPACE"


# Libraries the pages and explorer.live import lazily. Two sessions starting at once could otherwise both import
# torch and one of them see it half imported (seen: 1 of 6 cold-start sessions failed that way).
HEAVY_MODULES = ("torch", "sentence_transformers", "peft", "faiss", "sklearn.cluster", "sklearn.decomposition",
                 "sklearn.linear_model", "scipy.special", "scipy.stats", "explorer.live")
_preload_lock = threading.Lock()
_preloaded: dict[str, str] = {}


def preload() -> dict[str, str]:
    """Import the heavy libraries once per server process, one session at a time (app.py calls it before any
    page runs). Returns module -> "ok" or the import error; a failed import is logged and left for the page that
    needs the module to report."""
    if _preloaded:
        return _preloaded
    with _preload_lock:
        if not _preloaded:
            result = {}
            for name in HEAVY_MODULES:
                try:
                    importlib.import_module(name)
                    result[name] = "ok"
                except Exception as err:  # noqa: BLE001 - reported by the page that needs it
                    result[name] = f"{type(err).__name__}: {err}"
                    _log().warning("could not import %s: %s", name, result[name])
            _preloaded.update(result)
    return _preloaded


def _log():
    from streamlit.logger import get_logger

    return get_logger("explorer.ui")


def one_line(err: BaseException, limit: int = 200) -> str:
    """An exception as one short line for the page (the traceback goes to the server log only)."""
    text = " ".join(str(err).split())
    if not isinstance(err, WorkspaceError):  # its messages explain themselves; others need their kind
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --- the workspace ------------------------------------------------------------------------------------------------
def cli_workspace(argv: Sequence[str] | None = None) -> str | None:
    """`streamlit run app.py -- --workspace DIR` (unknown arguments are ignored)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--workspace", "-w")
    args, _ = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    return args.workspace


def initial_workspace() -> str:
    return cli_workspace() or os.environ.get(ENV_WORKSPACE) or str(DEFAULT_WORKSPACE)


@st.cache_resource(show_spinner=False, max_entries=8)
def _open(path: str, stamp: int) -> Workspace:
    return Workspace(path)


def open_workspace(path: str | Path) -> Workspace:
    """A cached Workspace (re-read when its manifest changes); WorkspaceError for a bad folder."""
    p = Path(path).expanduser()
    manifest = p / "manifest.json"
    stamp = manifest.stat().st_mtime_ns if manifest.is_file() else 0
    if not stamp:
        Workspace(p)  # raises the explanatory WorkspaceError
    return _open(str(p.resolve()), stamp)


def sample_build() -> BackgroundBuild:
    """The first start's build of the sample workspace, in its own process (closing the tab does not stop it)."""
    return BackgroundBuild(SAMPLE_CONFIG, DEFAULT_WORKSPACE)


def needs_sample_build(path: str) -> bool:
    return Path(path).expanduser().resolve() == DEFAULT_WORKSPACE.resolve() and not (
        DEFAULT_WORKSPACE / "manifest.json").is_file()


def start_sample_build_early() -> None:
    """On a first start, begin the sample's build before anything slow runs (app.py calls it before the libraries'
    preload): `make run` has usually started it already; a server started otherwise starts it here."""
    path = st.session_state.get("workspace_path") or initial_workspace()
    if needs_sample_build(path):
        sample_build().start()


@st.cache_data(show_spinner=False)
def _sample_outline(config: str) -> str:
    from ..config import load_config

    cfg = load_config(config)
    return (f"When it is done, the app opens on {len(cfg.datasets)} datasets ({', '.join(d.name for d in cfg.datasets)}) "
            f"and {len(cfg.experts)} experts: the Overview table of every routing strategy, the routing map, the "
            "decisions, the query inspector, error analysis, the experts with what-if, and the playground.")


def show_sample_build() -> None:
    """The main area while the sample workspace is being built: which stage of how many, its own progress, what
    will appear. Starts the build if none runs; reruns every second until it is done."""
    job = sample_build()
    job.start()
    status = job.status()
    st.title("Router Explorer")
    if status["state"] == "done":
        st.rerun()
    if status["state"] in ("failed", "not started"):
        st.error("Building the sample workspace failed. The end of its log is below; fix the cause and reload the "
                 f"page to try again (the log is {job.log_path}).")
        st.code(status.get("log", ""), language=None)
        st.stop()
    from ..background import progress_lines

    overall, head, part, part_text = progress_lines(status)
    st.subheader("Building the sample workspace (first start)")
    st.progress(overall, text=head)
    if part is not None:
        st.progress(part, text=part_text)
    st.caption("It runs in its own process: you can close this tab and come back. Later starts open at once.")
    try:
        st.caption(_sample_outline(str(SAMPLE_CONFIG)))
    except Exception:  # noqa: BLE001 - the outline is a courtesy; the build reports config problems itself
        pass
    time.sleep(1.0)
    st.rerun()


def ws_key(ws: Workspace) -> str:
    """What cached data of a workspace is keyed by: its folder, when it was built and last given a run (explorer
    add-run), and the second workspace it is compared with, if any."""
    return (f"{ws.path.resolve()}|{ws.manifest.get('created', '')}|{ws.manifest.get('updated', '')}|"
            f"{getattr(ws, 'compared_with', '')}")


def set_workspace(ws: Workspace | None) -> None:
    st.session_state["_ws"] = ws


def workspace() -> Workspace:
    """The session's workspace; pages stop with an explanation when there is none (a page that compares two
    reads its pair through its parameters: explorer/ui/session.py)."""
    ws = st.session_state.get("_ws")
    if ws is None:
        st.info("No workspace is open. Give a workspace folder in the sidebar (one made by `explorer build`), or "
                "start the app with `streamlit run app.py -- --workspace DIR`.")
        st.stop()
    return ws


def score_note() -> None:
    from .style import SCORE_NOTE

    st.caption(SCORE_NOTE)
