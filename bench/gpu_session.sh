#!/usr/bin/env bash
# Issue 20's GPU work in ONE prepared run, for a session that is lent a GPU (the device tool's
# `run`; ~15 minutes of device time in all, the machine's start included). About 8-9 minutes:
#   1. bench/gpu_check.py (`make gpu-check` without its install step, which needs the network):
#      verification on the GPU layer by layer, random stacks in TF32 and FP32, the examples in
#      every precision, the zoo's small models, timings at batch 1 and 32 against PyTorch (cuDNN,
#      TF32 off and on, eager and CUDA graphs); results in $OUT/gpu_check_<gpu>.md and .json;
#   2. with the time left, the GPU-only tests (int8 kernels on the GPU, every precision).
#
# The machine's python3 has numpy, jinja2, click, scipy, torch and onnx but not cffi: fetch its
# wheels here once (git ignores .wheels/) and carry them:
#   python3 -m pip download cffi pycparser --only-binary=:all: --python-version 3.12 \
#       --platform manylinux2014_x86_64 -d .wheels
#   run(command="bash bench/gpu_session.sh", carry=[".wheels"], timeout_s=600)
# Then commit $OUT's gpu_check_*.md and .json to bench/results/.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/results}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
start=$SECONDS

if ! python3 -c "import cffi" 2>/dev/null; then
    python3 -m pip install --quiet --no-index --find-links .wheels cffi pycparser ||
        { echo "gpu_session: cffi is missing and no wheel of it in .wheels/ (see the top of this file)"; exit 2; }
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1; nvcc --version | tail -1; } |
    tee "$out/gpu_session.log"

timeout 480 python3 bench/gpu_check.py --budget 330 --stacks 30 --out "$out" 2>&1 | tee -a "$out/gpu_session.log"
status=${PIPESTATUS[0]}
if [ "$status" = 2 ]; then
    exit 2                                     # no usable GPU: gpu_check said why
fi

left=$((560 - (SECONDS - start)))
if [ "$left" -gt 60 ]; then
    timeout "$left" python3 -m pytest -p no:xdist -q -rs -m gpu tests/test_int8_cuda.py tests/test_cuda_nvcc.py \
        2>&1 | tail -20 | tee -a "$out/gpu_session.log"
else
    echo "gpu_session: no time left for the GPU-only tests" | tee -a "$out/gpu_session.log"
fi
echo "gpu_session: gpu_check exit status $status, $((SECONDS - start)) s in all" | tee -a "$out/gpu_session.log"
exit "$status"
