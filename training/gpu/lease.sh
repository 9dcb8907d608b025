#!/usr/bin/env bash
# Train on a lent GPU machine (Python 3.12, its own PyTorch, no internet). Prepare here first:
#   echo /.whl/ >> .git/info/exclude; echo /.data/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl kornia kornia_rs simplejpeg jpeglib
#   jpeglib's wheel holds 25 libjpeg builds and their sources, 22.8 MB; keep the two it loads (6b on
#   import, turbo210 for reading), 1.25 MB, so that the wheels (8.9 MB in all) fit beside the data:
#   w=$(ls .whl/jpeglib-*.whl); zip -q -d "$w" 'jpeglib/cjpeglib/*/*'
#   zip -q -d "$w" $(unzip -Z1 "$w" | grep 'cjpeglib_.*\.so' | grep -v -e turbo210 -e '_6b\.')
#   mkdir -p .data && cp -r ../shared/data/device-pack .data/
# then run with carry [".whl", ".data"]:
#   bash training/gpu/lease.sh check           # imports + 5 steps (one short call)
#   bash training/gpu/lease.sh train 7 [ARGS]  # 7 minutes, then fp16 weights (+ EMA) + log into $OUT
#   e.g. ARGS: --continue src/napari_jpeg_restore/weights/qgcn-colour --batch 64   (the shipped lineage, GPU batch)
# Before any lease, the same code path runs here on the CPU (a test does this):
#   DATA=../shared/data/device-pack bash training/gpu/lease.sh dry-run [ARGS]
set -euo pipefail
mode=${1:-check}
minutes=${2:-7}
shift $(( $# > 2 ? 2 : $# ))
out=${OUT:-/tmp/out}
run=$out/run
data=${DATA:-.data/device-pack}
python=${PYTHON:-python3}
device=cuda
if compgen -G ".whl/*.whl" >/dev/null; then
  $python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/training PYTHONUNBUFFERED=1
budget=(--minutes "$minutes")
if [ "$mode" = dry-run ]; then  # the train path on the CPU: a few steps instead of minutes
  device=cpu budget=(--steps 3)
fi
train() { $python -m qgcn_training.cli train --data "$data" --out "$run" --device "$device" --holdout 3 "$@"; }
if [ "$mode" = check ]; then
  nvidia-smi --query-gpu=name,memory.total --format=csv
  $python -c "import torch, kornia, safetensors, jpeglib, simplejpeg, napari_jpeg_restore, qgcn_training; print(torch.__version__, torch.cuda.get_device_name(0))"
  train --preset small --batch 64 --steps 5 --val-every 5 "$@"
else
  train "${budget[@]}" --checkpoint-minutes 2 --val-every 500 "$@" 2>&1 | tr '\r' '\n' | grep -v '^train:' || true
  $python -m qgcn_training.cli export "$run/checkpoint.pt" --out "$out/weights" --data-root /nonexistent
  if $python -c "import sys, torch; sys.exit(not torch.load(sys.argv[1], weights_only=True).get('ema'))" "$run/checkpoint.pt"; then
    $python -m qgcn_training.cli export "$run/checkpoint.pt" --ema --out "$out/weights-ema" --data-root /nonexistent
  fi
  cp "$run/log.csv" "$out/log.csv"
  rm -rf "$run"  # optimizer state stays on the machine; only fp16 weights and the log come back
  find "$out" -type f | sort
fi
