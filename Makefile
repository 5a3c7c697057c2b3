# Everything installs itself: `make test` on a fresh clone creates .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
# No model hub on the dev machines and CI: fail fast instead of waiting on the network.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: install test test-fast demo lint bench clean

# torch first, from TORCH_INDEX when given: PyPI's torch==2.13.0 is the CUDA build on Linux
# x86_64 (GBs); `make install TORCH_INDEX=https://download.pytorch.org/whl/cpu` takes the CPU
# build. Without it, pip's configured index (and find-links) decide. Nothing else is installed.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==$(TORCH_VERSION) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The page test drives Debian's chromium and its driver: installed for `make test` only, where
# apt-get is at hand as root (CI: a fresh machine), checked once; elsewhere the test skips,
# saying why. `make install` and `make demo` never install a browser.
CHROMIUM_STAMP := $(VENV)/.chromium-stamp
$(CHROMIUM_STAMP): $(STAMP)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "chromium and chromedriver found"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	else \
		echo "no chromium/chromedriver and no apt-get as root: the browser test will skip"; \
	fi
	touch $(CHROMIUM_STAMP)

install: $(STAMP)

test: $(STAMP) $(CHROMIUM_STAMP)
	$(PY) -m pytest -q

# The unit tests, without the `slow` ones (those that train a model or read real MNRE, and
# others measured at 10 s or more; the rule is in tests/conftest.py): for the edit-test loop.
# `make test` (CI) runs everything.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

demo: $(STAMP)
	$(VENV)/bin/zsmie demo --out runs/demo --overwrite

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf runs .pytest_cache
