#!/usr/bin/env bash
# Seconds per training step of each preset on this machine (1 thread, batch 16 of 64×64 patches),
# through the real `qgcn-train train`; not a test. Usage: bash benchmarks/train_speed.sh [STEPS]
set -euo pipefail
steps=${1:-20}
data=${DATA:-../shared/data}/BSDS500/val
out=$(mktemp -d)
echo "| preset | variant | s/step | data wait |"
echo "| --- | --- | --- | --- |"
for spec in "tiny qgcn" "tiny qgcn --skip-global" "small qgcn" "small qgcn --skip-global" "small qcn" \
            "medium qgcn" "medium qgcn --skip-global" "paper qgcn"; do
  set -- $spec
  n=$steps; [ "$1" = paper ] && n=4
  OMP_NUM_THREADS=1 qgcn-train train --data "$data" --out "$out/$1-$2${3:-}" --preset "$1" --variant "$2" ${3:-} \
    --steps "$n" --threads 1 --holdout 0 --val-every "$n" >/dev/null 2>&1
  python - "$out/$1-$2${3:-}" "$spec" <<'PY'
import csv, sys, torch
ck = torch.load(sys.argv[1] + "/checkpoint.pt", weights_only=True)
row = list(csv.DictReader(open(sys.argv[1] + "/log.csv")))[-1]
preset, variant, *extra = sys.argv[2].split()
print(f"| {preset} | {variant}{' ' + extra[0] if extra else ''} | {ck['elapsed'] / ck['step']:.2f} | {float(row['data_wait_share']):.1%} |")
PY
done
rm -rf "$out"
