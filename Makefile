# Everything installs itself: `make test` on a fresh clone creates .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# No model hub on the dev machines and CI: fail fast instead of waiting on the network.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: install test demo lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel of torch 2.13.0 (an unpinned torch pulls a multi-GB CUDA build).
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The page test drives Debian's chromium and its driver: installed here where apt-get is at
# hand as root (CI: a fresh machine), checked once; elsewhere the test skips, saying why.
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

install: $(STAMP) $(CHROMIUM_STAMP)

test: install
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/zsmie demo --out runs/demo --overwrite

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf runs .pytest_cache
