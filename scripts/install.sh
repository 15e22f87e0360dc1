#!/usr/bin/env bash
# Fresh-machine install: a virtual environment in .venv with a CPU build of torch, anirec
# (editable, with the test, faiss and fast-CPU extras: onnx, openvino, static) and, where the
# Hugging Face hub is out of reach, the default small model from the offline installer.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$py" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# Pinned CPU build: an unpinned torch pulls a multi-GB CUDA build. Users with a GPU can
# install the torch build they need first; anirec accepts any torch 2.x.
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test,faiss,onnx,openvino,static]"  # the fast-CPU extras add ~300 MB
offline=../shared/tools/offline-models
if [ -x "$offline" ]; then
  "$offline" "${ANIREC_MODELS:-$HOME/.cache/anirec/models}" minilm
fi
echo "installed: $(.venv/bin/anirec --help >/dev/null && echo anirec OK)"
