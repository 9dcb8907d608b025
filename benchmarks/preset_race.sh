#!/usr/bin/env bash
# Presets at equal CPU time (issue: choose the default preset by measurement). Each run trains
# MINUTES of one thread on the training pool (the 64×64 stage, global branch skipped for QGCN),
# then its held-out validation curve (log.csv: val_psnr vs elapsed_s) is compared.
#   bash benchmarks/preset_race.sh MINUTES OUTDIR "tiny small medium" [extra qgcn-train args]
set -euo pipefail
minutes=${1:-30}; out=${2:-runs/race}; presets=${3:-"tiny small medium"}; shift $(( $# > 3 ? 3 : $# ))
data=${DATA:-../shared/data}
for p in $presets; do
  OMP_NUM_THREADS=1 qgcn-train train --data "$data/WikiPhotos49" --data "$data/BSDS500/train" \
    --data "$data/BSDS500/val" --out "$out/$p" --preset "$p" --skip-global --minutes "$minutes" --threads 1 \
    --lr 5e-4 --val-every 250 "$@" >"$out-$p.out" 2>&1
  echo "## $p"; cat "$out/$p/log.csv"
done
