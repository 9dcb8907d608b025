#!/usr/bin/env bash
# Presets at equal CPU time (issue: choose the default preset by measurement). Each run trains
# MINUTES of one thread on the training pool (the 64×64 stage), then its held-out validation
# curve (log.csv: val_psnr vs elapsed_s) is compared. An entry "small" trains the preset as QCN
# (global branch skipped); "small+global" trains it as QGCN with its global branch.
#   bash benchmarks/preset_race.sh MINUTES OUTDIR "tiny small medium small+global" [extra qgcn-train args]
set -euo pipefail
minutes=${1:-30}; out=${2:-runs/race}; entries=${3:-"tiny small medium small+global"}; shift $(( $# > 3 ? 3 : $# ))
data=${DATA:-../shared/data}
for e in $entries; do
  preset=${e%+global}; skip=--skip-global
  [[ $e == *+global ]] && skip=
  OMP_NUM_THREADS=1 qgcn-train train --data "$data/WikiPhotos49" --data "$data/BSDS500/train" \
    --data "$data/BSDS500/val" --out "$out/$e" --preset "$preset" $skip --minutes "$minutes" --threads 1 \
    --lr 5e-4 --val-every 250 "$@" >"$out-$e.out" 2>&1
  echo "## $e"; cat "$out/$e/log.csv"
done
