#!/usr/bin/env bash
# Train on a lent GPU machine (Python 3.12, its own PyTorch, no internet). Prepare here first:
#   echo /.whl/ >> .git/info/exclude; echo /.data/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl kornia kornia_rs
#   mkdir -p .data && cp -r ../shared/data/device-pack .data/
# then run with carry [".whl", ".data"]:
#   bash training/gpu/lease.sh check           # imports + 5 steps (one short call)
#   bash training/gpu/lease.sh train 7 [ARGS]  # 7 minutes, then fp16 weights + log into $OUT
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/training PYTHONUNBUFFERED=1
mode=${1:-check}
minutes=${2:-7}
shift $(( $# > 2 ? 2 : $# ))
train() { python3 -m qgcn_training.cli train --data .data/device-pack --out "$run" --device cuda --holdout 3 "$@"; }
run=${OUT:-/tmp/out}/run
if [ "$mode" = check ]; then
  nvidia-smi --query-gpu=name,memory.total --format=csv
  python3 -c "import torch, kornia, safetensors, napari_jpeg_restore, qgcn_training; print(torch.__version__, torch.cuda.get_device_name(0))"
  train --preset small --batch 64 --steps 5 --val-every 5 "$@"
else
  train --minutes "$minutes" --checkpoint-minutes 2 --val-every 500 "$@" 2>&1 | tr '\r' '\n' | grep -v '^train:' || true
  python3 -m qgcn_training.cli export "$run/checkpoint.pt" --out "${OUT:-/tmp/out}/weights" --data-root /nonexistent
  cp "$run/log.csv" "${OUT:-/tmp/out}/log.csv"
  rm -f "$run/checkpoint.pt"  # optimizer state stays on the machine; only fp16 weights come back
fi
