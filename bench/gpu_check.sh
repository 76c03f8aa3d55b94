#!/usr/bin/env bash
# GPU check: a 1M-vector index searched on the GPU, a corpus embedded there.
#   bench/gpu_check.sh [--vectors N] [--queries N] [--model NAME_OR_FOLDER] [--out FILE]
# Installs nothing (GPU machines are often offline): it uses .venv when `make setup`
# made one, else $PYTHON or python3 with torch, sentence-transformers and faiss.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" bench/gpu_check.py "$@"
