"""What the pages share: the workspace of this session, cached derived tables, the live router, and the page state
kept in the URL query parameters (so a link reopens the same view)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import streamlit as st

from ..pages import PAGES  # noqa: F401  (the page registry: app.py and the pages read it from here)
from ..workspace import Workspace, WorkspaceError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WORKSPACE = ROOT / "workspaces" / "sample"
SAMPLE_CONFIG = ROOT / "sample_data" / "sample.toml"
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


def sample_build():
    """The first start's build of the sample workspace, in its own process (closing the tab does not stop it)."""
    from ..background import BackgroundBuild

    return BackgroundBuild(SAMPLE_CONFIG, DEFAULT_WORKSPACE)


def needs_sample_build(path: str) -> bool:
    return Path(path).expanduser().resolve() == DEFAULT_WORKSPACE.resolve() and not (
        DEFAULT_WORKSPACE / "manifest.json").is_file()


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
    st.session_state.pop("_page_ws", None)  # a page's comparison (compare_with) lasts one run of that page


def compare_with() -> None:
    """'Compare with workspace': a second workspace's folder (the URL's `compare`); when it opens and pairs with this
    one (explorer.compare), this run of the page reads both, the second's systems as B:<name>."""
    from ..compare import CompareError, Compared
    from .safe import md

    path = synced(st.text_input, "Compare with workspace (folder)", "compare", None, "",
                  help="A second workspace built on the same datasets and evaluated queries (another base model, "
                       "another recipe): its systems and strategies appear as B:<name>, paired query by query.")
    if not path:
        return
    try:
        other = open_workspace(path)
        st.session_state["_page_ws"] = Compared(st.session_state["_ws"], other)
    except (WorkspaceError, CompareError, OSError) as err:
        st.warning(f"Not compared: {md(one_line(err))}")


def workspace() -> Workspace:
    """The session's workspace (with a second one beside it on a page that compares); pages stop with an
    explanation when there is none."""
    ws = st.session_state.get("_page_ws") or st.session_state.get("_ws")
    if ws is None:
        st.info("No workspace is open. Give a workspace folder in the sidebar (one made by `explorer build`), or "
                "start the app with `streamlit run app.py -- --workspace DIR`.")
        st.stop()
    return ws


# --- cached derived data ------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=256)
def _cached(name: str, key: str, args: tuple, kwargs: tuple, _func: Callable, _ws: Workspace):
    return _func(_ws, *args, **dict(kwargs))


def cached(func: Callable, *args, **kwargs):
    """`func(workspace, *args, **kwargs)` for a read-side function (explorer.views, .analysis, .export) on the
    session's workspace, cached by (its name, workspace path + manifest 'created', arguments)."""
    ws = workspace()
    return _cached(f"{func.__module__}.{func.__qualname__}", ws_key(ws), tuple(args), tuple(sorted(kwargs.items())),
                   func, ws)


@st.cache_resource(show_spinner=False, max_entries=8)
def _whatif(key: str, _ws: Workspace):
    from ..analysis import WhatIf

    return WhatIf(_ws)


def whatif():
    ws = workspace()
    return _whatif(ws_key(ws), ws)


@st.cache_data(show_spinner=False, max_entries=256)
def _whatif_compare(key: str, enabled: tuple, measure: str, _ws: Workspace):
    from ..views import whatif_compare

    return whatif_compare(_whatif(key, _ws), list(enabled), measure)


def whatif_compare(enabled: Sequence[str], measure: str) -> dict:
    ws = workspace()
    return _whatif_compare(ws_key(ws), tuple(enabled), measure, ws)


LIVE_TORCH_THREADS = 1


def open_live_router(ws: Workspace):
    """The LiveRouter for the Playground. One query at a time (the encoder is locked) is fastest on one intra-op
    thread: on 2 cores, 2 OpenMP threads spin against any other load (p95 0.5 s vs 20 ms for one short query)."""
    import torch

    from ..live import LiveRouter

    torch.set_num_threads(LIVE_TORCH_THREADS)
    return LiveRouter.open(ws)


@st.cache_resource(show_spinner=False, max_entries=4)
def _live(key: str, _ws: Workspace):
    router = open_live_router(_ws)
    router.route("warm up the routers")  # fits the classifiers once, so the first real query is fast
    return router


def live_router():
    ws = workspace()
    return _live(ws_key(ws), ws)


# --- page state in the URL ----------------------------------------------------------------------------------------
def param(name: str, default: Any = None) -> Any:
    value = st.query_params.get(name)
    return default if value in (None, "") else value


def param_list(name: str, default: list[str] | None = None) -> list[str]:
    values = st.query_params.get_all(name)
    if len(values) == 1 and "," in values[0]:
        values = values[0].split(",")
    return [v for v in values if v] or list(default or [])


def set_params(**values: Any) -> None:
    """Write page state to the URL (lists as repeated keys; None removes the key)."""
    for k, v in values.items():
        if v is None:
            if k in st.query_params:
                del st.query_params[k]
        elif isinstance(v, (list, tuple)):
            st.query_params[k] = [str(x) for x in v]
        else:
            st.query_params[k] = str(v)


def _within(value: Any, kwargs: dict) -> bool:
    """A number from the URL is finite and inside the widget's min_value/max_value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    if value != value or value in (float("inf"), float("-inf")):
        return False
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def synced(widget: Callable, label: str, param_name: str, options: Sequence | None = None, default: Any = None,
           container=None, cast: Callable = str, keep_in_url: bool = False, **kwargs) -> Any:
    """A widget whose value starts from the URL parameter `param_name` and is written back to it.

    The URL seeds the widget when the widget is first drawn on the page (e.g. a shared link or a switch from
    another page); after that the widget's own state leads and the URL follows. Defaults stay out of the URL,
    unless `keep_in_url`: a value that names the thing shown (the inspected query) stays, so a link still names
    it when the default changes."""
    key = f"qp_{param_name}"
    raw = st.query_params.get(param_name) if widget is not st.multiselect else param_list(param_name)
    if key not in st.session_state:
        value: Any = default
        try:  # the URL is untrusted: any value it gives that the widget cannot take falls back to the default
            if widget is st.multiselect:
                value = [cast(v) for v in raw] if raw else default
                value = list(dict.fromkeys(v for v in value if options is None or v in options))
                if kwargs.get("max_selections"):
                    value = value[:kwargs["max_selections"]]
            elif raw not in (None, ""):
                value = cast(raw)
                if not _within(value, kwargs):
                    value = default
        except Exception:  # noqa: BLE001 - a cast of any text from the URL
            value = default
        if options is not None and widget is not st.multiselect and value not in options:
            value = default if default in options else (options[0] if len(options) else None)
        st.session_state[key] = value
    elif options is not None and widget is not st.multiselect and st.session_state[key] not in options:
        st.session_state[key] = default if default in options else (options[0] if len(options) else None)
    elif widget is st.multiselect and options is not None:
        st.session_state[key] = [v for v in st.session_state[key] if v in options]
    host = container or st
    fn = getattr(host, widget.__name__)
    if options is not None:
        value = fn(label, options, key=key, **kwargs)
    else:
        value = fn(label, key=key, **kwargs)
    if not keep_in_url and (value == default or (isinstance(value, list) and list(value) == list(default or []))):
        set_params(**{param_name: None})  # defaults stay out of the URL
    else:
        set_params(**{param_name: value if not isinstance(value, bool) else int(value)})
    return value


def open_query(row: int, **extra: Any) -> None:
    """Open one query in the Query inspector (keeps the strategy and dataset of the current view)."""
    params = {"row": str(int(row))}
    for k in ("strategy", "measure"):
        v = st.query_params.get(k)
        if v:
            params[k] = v
    params.update({k: str(v) for k, v in extra.items() if v is not None})
    for key in ("qp_row", "qp_dataset", "qp_cols"):
        st.session_state.pop(key, None)
    st.switch_page(PAGES["inspector"].script, query_params=params)


def score_note() -> None:
    from .style import SCORE_NOTE

    st.caption(SCORE_NOTE)


def as_bool(value: Any) -> bool:
    """A boolean from the URL ('1', 'true': True; anything else False)."""
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def queue_query(row: int, dataset: str | None = None) -> None:
    """From a widget callback on the Query inspector: show another query on the next run (its row and dataset
    widgets take the new values before they are drawn; the rankings picked stay, the document read closes)."""
    st.session_state["qp_row"] = int(row)
    if dataset is not None:
        st.session_state["qp_dataset"] = str(dataset)
        st.query_params["dataset"] = str(dataset)
    st.query_params["row"] = str(int(row))
    st.session_state.pop("insp_doc", None)
    st.query_params.pop("doc", None)


def metadata_param(field: str) -> str:
    """The URL parameter of a metadata filter: `kind`, or `meta_<field>` (field names are letters, digits, - and _,
    so they are safe in a URL)."""
    return "kind" if field == "kind" else f"meta_{field}"


NO_VALUE = "(no value)"  # a metadata choice for the queries without the field: "" does not survive a URL


def metadata_filters(options: dict, what: str, help_text: str) -> dict[str, list[str]]:
    """One multiselect per query metadata field (kind first), four to a row, each keeping its choice in the URL;
    returns field -> the chosen values (fields left at "any" are absent). `what` names the queries ("Query",
    "Test query"); `help_text` says what the filter does."""
    from . import safe

    chosen: dict[str, list[str]] = {}
    fields = list(options)
    for start in range(0, len(fields), 4):
        for col, field in zip(st.columns(4), fields[start:start + 4]):
            label = f"{what} kind" if field == "kind" else f"{what} {field}"
            shown = [NO_VALUE if v == "" else v for v in options[field]["value"]]
            picked = synced(st.multiselect, safe.md(label), metadata_param(field), shown, [], container=col,
                            placeholder="any", help=f"{help_text} (metadata field {safe.md(field)}).")
            if picked:
                chosen[field] = ["" if v == NO_VALUE else v for v in picked]
    return chosen
