# Two entry points: `make demo` (the main job, on the embedded digits data) and `make test`.
# Each installs what it needs into .venv first. PYTHON picks the interpreter (3.10+).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CFF    := $(VENV)/cffconvert
# torch is pinned to the release the tests are run with; plain `pip install blackout` accepts torch>=2.1.
TORCH  ?= torch==2.13.0

.PHONY: demo test check docs package-check install install-test system-packages clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e .
	touch $@

install: $(VENV)/.installed

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install-test: $(VENV)/.installed-test system-packages

# Debian packages the tests use: headless Chromium (report test) and the full Fashion-MNIST.
# Installed when running as root with apt-get; otherwise those tests skip and say why.
system-packages:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	   { ! command -v chromium >/dev/null || [ ! -d /usr/share/datasets/fashion-mnist ]; }; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium dataset-fashion-mnist >/dev/null; \
	fi

demo: install
	$(VENV)/bin/blackout demo

test: install-test
	$(PY) -m pytest -q

# Lint, format, types and the citation file; clean on src/ (ruff format also covers tests/).
check: install-test $(CFF)/bin/cffconvert
	$(VENV)/bin/ruff check src
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy
	$(CFF)/bin/cffconvert --validate -i CITATION.cff

# cffconvert pins jsonschema<4, older than the test extras need: it gets a venv of its own.
$(CFF)/bin/cffconvert:
	$(PYTHON) -m venv $(CFF)
	$(CFF)/bin/python -m pip install -q "cffconvert>=2"

# The documentation site, built strictly into site/ (tests/test_docs.py builds and views it too).
docs: install-test
	$(VENV)/bin/mkdocs build --strict

# The built sdist and wheel, installed into a fresh environment outside the tree (.ci/package-check).
package-check: install-test
	PYTHON=$(PYTHON) TORCH="$(TORCH)" BUILD_PY=$(abspath $(PY)) .ci/package-check

clean:
	rm -rf $(VENV) .pytest_cache site dist build
