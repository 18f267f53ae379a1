#!/usr/bin/env bash
# tests/gpu/prepare_wheels.sh [DIR]: wheels of what the GPU machine lacks, to carry with the working tree.
#
# The device image (Python 3.12, torch CUDA build) already has numpy, pandas, matplotlib, scipy, psutil,
# tqdm, safetensors, onnx, onnxscript, onnxruntime (CPU), pytest, pytest-benchmark, tabulate,
# portalocker, PyYAML, pillow and py-cpuinfo. It lacks fvcore and its pure-Python dependencies
# iopath, yacs and termcolor: without fvcore, `bench run` cannot count GMACs and test_cuda_run fails.
# fvcore and iopath are published as source only, so they are built here into py3-none-any wheels
# (pure Python: the same wheel installs on 3.11 and 3.12). About 0.2 MiB in all.
#
# Run on the CPU machine (needs the package registry), from the repository root:
#   bash tests/gpu/prepare_wheels.sh            # -> .cache/gpu-wheels (ignored by git via .cache/)
# then name `.cache/gpu-wheels` in the device call's `carry`; check.sh installs from it with
# pip --no-index --no-deps, never touching the machine's torch.
# onnxruntime-gpu is not included: its wheel is several hundred MiB, over the 64 MiB that travels.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
DIR=${1:-.cache/gpu-wheels}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
mkdir -p "$DIR"
# the versions constraints.txt pins
"$PY" -m pip wheel -q --no-deps -w "$DIR" \
    fvcore==0.1.5.post20221221 iopath==0.1.10 yacs==0.1.8 termcolor==3.3.0
ls -l "$DIR"
du -sh "$DIR"
