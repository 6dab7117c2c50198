# DataHub's commands. `make demo` and `make test` set up everything they need on a fresh
# machine (Debian packages, a Python venv, the npm proxy, Trino from Maven Central).

# The venv lives outside the checkout so that users' system accounts (jupyter-<name>)
# can run their servers from it; it is built on Debian's Python for the same reason.
DATAHUB_HOME ?= /opt/datahub
VENV ?= $(DATAHUB_HOME)/venv
PYTHON ?= /usr/bin/python3.11
BIN := $(VENV)/bin
APT_PACKAGES := slapd ldap-utils python3.11-venv maven postgresql chromium fonts-dejavu-core
PYTEST_ARGS ?=
# Where JupyterLab finds DataHub's prebuilt extension (setup.py's data_files put it there
# for a regular install).
LABEXTENSION := $(VENV)/share/jupyter/labextensions/jupyter-datahub
# JupyterLab's settings for this venv: the site's overrides.json and packages' overrides.d.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings
# DataHub's JupyterLab extension: its sources, build tools and own tests (jest, eslint).
EXTENSION := extensions/labextension
# The browser tests that take the README's pictures (docs/screenshots/*.png).
SCREENSHOT_TESTS := tests/e2e/test_browser.py tests/e2e/test_browser_flows.py tests/e2e/test_look.py \
	tests/e2e/test_sql_editor.py tests/e2e/test_schema_browser.py tests/e2e/test_result_grid.py

.PHONY: help install demo test screenshots lint format clean

help:
	@echo "make demo         install everything and run DataHub with demo users"
	@echo "make test         install everything, start the services and run the whole suite"
	@echo "make screenshots  run the browser tests that take the README's pictures and"
	@echo "                  copy them into docs/screenshots/ (make test never writes there)"
	@echo "make lint         ruff check and format check"

install: .make/apt $(BIN)/python node_modules/.bin/configurable-http-proxy $(EXTENSION)/node_modules/.package-lock.json
	@echo "==> Installing DataHub and its Python dependencies into $(VENV)"
	$(BIN)/pip install --quiet --upgrade pip
	@# An editable install before linked the extension's build from its checkout (below);
	@# pip would copy the extension through that link, and fail once that checkout is gone.
	@if [ -L "$(LABEXTENSION)" ]; then rm -f "$(LABEXTENSION)"; fi
	$(BIN)/pip install --quiet ".[stack,test,bench,kubernetes]"
	@# The installed package must be this checkout's code (the tests check it at start).
	@# Editable when the users' accounts (jupyter-<name>) can read the checkout, so edits
	@# count at once; a copy otherwise (a checkout under /root, say): run make again after
	@# editing.
	@if runuser -u nobody -- test -r "$(CURDIR)/datahub/__init__.py" 2>/dev/null; then \
		echo "==> Installing this checkout editable (other accounts can read it)"; \
		$(BIN)/pip install --quiet --no-deps --force-reinstall --editable . ; \
		echo "==> Removing any copy of the package an interrupted install left (it would shadow the checkout)"; \
		site=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
			test -d "$$site" && rm -rf "$$site/datahub"; \
		echo "==> Linking the JupyterLab extension's build (an editable install has no copy)"; \
		rm -rf "$(LABEXTENSION)" && ln -s "$(CURDIR)/datahub/labextension" "$(LABEXTENSION)"; \
		echo "==> Copying the extension's setting defaults (setup.py's data_files, as above)"; \
		mkdir -p "$(LAB_SETTINGS)/overrides.d"; \
		cp extensions/labextension/settings/jupyter-datahub.json "$(LAB_SETTINGS)/overrides.d/"; \
	else \
		echo "==> Installing a copy of this checkout (other accounts cannot read it)"; \
		$(BIN)/pip install --quiet --no-deps --force-reinstall . ; \
	fi
	# JupySQL is here only to be benchmarked against; keep its JupyterLab plugin out of
	# users' JupyterLab, and keep JupyterLab from asking users about news from the web.
	$(BIN)/jupyter labextension disable --level=sys_prefix jupysql-plugin >/dev/null
	mkdir -p $(LAB_SETTINGS)
	cp jupyterlab-overrides.json $(LAB_SETTINGS)/overrides.json

.make/apt:
	@echo "==> Installing Debian packages: $(APT_PACKAGES)"
	@if dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then echo "    already installed"; else \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES); fi
	@# Node may come from elsewhere (NodeSource) and conflict with Debian's npm: only add it
	@# when there is none.
	@command -v npm >/dev/null || (apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm)
	@mkdir -p .make && touch $@

$(BIN)/python:
	@echo "==> Creating the Python environment $(VENV)"
	mkdir -p $(DATAHUB_HOME)
	$(PYTHON) -m venv $(VENV)
	chmod 755 $(DATAHUB_HOME)

node_modules/.bin/configurable-http-proxy: package.json package-lock.json
	@echo "==> Installing configurable-http-proxy (npm, pinned by package-lock.json)"
	npm ci --no-audit --no-fund
	@touch $@

$(EXTENSION)/node_modules/.package-lock.json: .make/apt $(EXTENSION)/package.json $(EXTENSION)/package-lock.json
	@echo "==> Installing the JupyterLab extension's build and test tools (npm, pinned by its package-lock.json)"
	cd $(EXTENSION) && npm ci --no-audit --no-fund
	@touch $@

demo: install
	$(BIN)/datahub up --state-dir .datahub

test: install
	@echo "==> Running the test suite (starts slapd, Trino and JupyterHub once)"
	$(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS)

screenshots: install
	@echo "==> Taking the README's screenshots (browser tests), then copying them"
	rm -rf .make/screenshots
	$(BIN)/pytest -p no:cacheprovider $(SCREENSHOT_TESTS) --screenshots .make/screenshots
	cp .make/screenshots/*.png docs/screenshots/

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .make build *.egg-info node_modules .datahub datahub/labextension \
		extensions/labextension/node_modules extensions/labextension/lib \
		extensions/labextension/tsconfig.tsbuildinfo
