#!/usr/bin/env bash
# Which initialisation and learning rate train faster here: the same short run (tiny QCN, 1 thread,
# batch 16 of 64×64, STEPS steps) with the paper's N(0, 0.01) init and lr 1e-4, and with PyTorch's
# default init at lr 1e-4 and 1e-3; held-out validation PSNR every STEPS/4 steps. Not a test.
set -euo pipefail
steps=${1:-800}
data=${DATA:-../shared/data}
out=${OUT:-$(mktemp -d)}
for run in "gaussian 1e-4" "default 1e-4" "default 1e-3"; do
  set -- $run
  OMP_NUM_THREADS=1 qgcn-train train --data "$data/WikiPhotos49" --out "$out/$1-$2" --preset tiny --variant qcn \
    --init "$1" --lr "$2" --steps "$steps" --threads 1 --val-every $((steps / 4)) >/dev/null 2>&1
  echo "## init $1, lr $2"; cat "$out/$1-$2/log.csv"
done
