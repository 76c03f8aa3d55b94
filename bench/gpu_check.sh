#!/usr/bin/env bash
# GPU check: a 1M-vector index searched on the GPU, a corpus embedded there, and an
# ingest through Ray with one embedding actor per GPU (bench/ray_ingest.py --gpu).
#   bench/gpu_check.sh [--vectors N] [--queries N] [--model NAME_OR_FOLDER] [--out FILE]
# The arguments go to bench/gpu_check.py. The Ray step: RAY_DOCS (SciFact abstracts,
# default 2000), RAY_MODEL (default multilingual-e5-small), SKIP_RAY=1 to leave it out;
# it writes bench/results/ray_ingest_gpu.json and needs ray[data] and the SciFact set.
# Installs nothing (GPU machines are often offline): it uses .venv when `make setup`
# made one, else $PYTHON or python3 with torch, sentence-transformers and faiss.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi -L failed); nothing to check" >&2
  exit 1
fi
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" bench/gpu_check.py "$@"

# Ray on the GPU: the local engine against Ray (embedding actors with num_gpus=1).
if [ "${SKIP_RAY:-0}" = "1" ]; then
  echo "gpu_check: Ray step skipped (SKIP_RAY=1)"
elif ! "$PYTHON" -c "import ray.data" >/dev/null 2>&1; then
  echo "gpu_check: Ray step skipped: ray[data] is not installed (pip install 'kbqa[ray]')" >&2
elif [ ! -d ../shared/data/beir/scifact ]; then
  echo "gpu_check: Ray step skipped: ../shared/data/beir/scifact is missing" >&2
else
  "$PYTHON" bench/ray_ingest.py --gpu --docs "${RAY_DOCS:-2000}" \
    --model "${RAY_MODEL:-multilingual-e5-small}"
fi
