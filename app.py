"""Router Explorer: page navigation and the sidebar (the workspace). Pages live in explorer/ui/.

    streamlit run app.py                          # the sample workspace (built on first start if missing)
    streamlit run app.py -- --workspace DIR       # any workspace made by `explorer build`
"""

from __future__ import annotations

import os
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import streamlit as st  # noqa: E402
from streamlit.logger import get_logger  # noqa: E402
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException  # noqa: E402

from explorer.ui import safe, state  # noqa: E402
from explorer.ui.style import chips, expert_palette  # noqa: E402
from explorer.workspace import WorkspaceError  # noqa: E402

log = get_logger("explorer.app")
SHOWN = 120  # characters of a typed path (or any unbroken run) shown back in a message: a 5,000-character one is cut


def cut(text: object, path: str = "") -> str:
    """A message for the sidebar with the typed `path` (and any other run of SHOWN+ characters without a space)
    cut in its middle, so a long path is never echoed whole."""
    short = lambda s: s if len(s) <= SHOWN else f"{s[:SHOWN * 2 // 3]}…{s[-SHOWN // 3:]}"  # noqa: E731
    text = str(text)
    for form in sorted({path, path.strip(), str(Path(path).expanduser())} - {""}, key=len, reverse=True):
        text = text.replace(form, short(form))
    return re.sub(rf"\S{{{SHOWN + 1},}}", lambda m: short(m.group(0)), text)


state.start_sample_build_early()  # a first start: the sample's build runs while the libraries below load
st.set_page_config(page_title="Router Explorer", page_icon="🔀", layout="wide")
state.preload()  # torch & co. imported once, before any session's page can import them half-way

pages = [st.Page(p.script, title=p.title, icon=p.icon, url_path=p.url_path, default=p.default)
         for p in state.PAGES.values()]
page = st.navigation(pages)

# A link may name its page as ?page=<key> (e.g. ?page=inspector&row=12): honour it once, then drop it.
wanted = st.query_params.get("page")
if wanted in state.PAGES and state.PAGES[wanted].title != page.title:
    rest = {k: st.query_params.get_all(k) for k in st.query_params if k != "page"}
    st.switch_page(state.PAGES[wanted].script, query_params=rest)

with st.sidebar:
    st.markdown("### Router Explorer")
    if "workspace_path" not in st.session_state:
        st.session_state["workspace_path"] = state.initial_workspace()
    path = st.text_input("Workspace folder", key="workspace_path",
                         help="A folder made by `explorer build CONFIG --out DIR`. Default: the sample workspace.")
    ws, building = None, False
    try:  # everything read from the workspace here is untrusted: any failure leaves no workspace open
        if not path.strip():
            raise WorkspaceError("Give a workspace folder (one made by `explorer build`).")
        building = state.needs_sample_build(path)
        if building:
            raise WorkspaceError("The sample workspace is being built (progress on the right).")
        ws = state.open_workspace(path)
        summary = (f"**{safe.md(ws.title)}**  \n{len(ws.datasets)} datasets · {len(ws.experts)} experts · "
                   f"{len(ws.strategies)} strategies · built {safe.md(str(ws.manifest.get('created', '?'))[:16])}")
        legend = chips(expert_palette(ws.encoders), ws.encoders)
    except WorkspaceError as err:
        ws = None
        if building:
            st.info(safe.md(err))
        else:
            st.error(f"Cannot open this workspace. {safe.md(cut(err, path))}")
    except OSError as err:
        ws = None
        st.error(f"Cannot read {safe.md(cut(repr(path)))}: {safe.md(cut(err.strerror or err, path))}")
    except Exception as err:  # noqa: BLE001 - a hostile or broken workspace must not take the app down
        ws = None
        log.exception("Could not open the workspace %r", cut(path))
        st.error(f"Cannot open this workspace: {safe.md(cut(state.one_line(err), path))}. Rebuild it with "
                 "`explorer build`, or give another folder.")
    state.set_workspace(ws)
    if ws is not None:
        st.caption(summary)
        st.caption("Expert colours")
        st.markdown(f"<div>{legend}</div>", unsafe_allow_html=True)  # one HTML block of escaped names

if building:
    state.show_sample_build()
if ws is None:
    st.title("Router Explorer")
    st.error("No workspace is open: fix the folder in the sidebar. A workspace is a folder made by "
             "`explorer build CONFIG --out DIR` (try `explorer build sample_data/sample.toml --out "
             "workspaces/sample`).")
    st.stop()

# The error boundary: a page that fails on this workspace says so in one line and how to get out; the traceback
# goes to the server log only. st.stop / st.rerun / st.switch_page raise ScriptControlException: let them through.
try:
    page.run()
except ScriptControlException:
    raise
except Exception as err:  # noqa: BLE001
    log.exception("The page %r failed on the workspace %s", page.title, ws.path)
    st.error(f"This page could not be drawn from this workspace: {safe.md(state.one_line(err))}. Rebuild the "
             "workspace with `explorer build`, or open another in the sidebar.")
