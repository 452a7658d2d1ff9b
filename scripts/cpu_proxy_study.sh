#!/usr/bin/env bash
# Proxy fidelity at CPU scale on real Fashion-MNIST: several short proxies, one 4x-longer reference.
# Every check shares one run folder, so the reference proxy's trainings are done once.
#   bash scripts/cpu_proxy_study.sh [STORAGE]        # a few hours on 2 cores; results in STORAGE/proxy-study/
set -euo pipefail
storage="${1:-runs}"
common=(mnasnet --archs 10 --seeds 3 --seed 0 --storage "$storage" --name proxy-study --concurrency 2
        --resolution 16 --max-val-samples 2000)
# the reference: 8 epochs over the same 2,000 images (4x the compute of README command 1's proxy),
# batch-norm statistics re-estimated; pinned whole, so every check below compares against the same trainings
against=(--against "--epochs 8 --batch-size 64 --lr 0.025 --max-train-samples 2000 --bn-recalibration-batches 8")
check() {  # NAME FLAGS...
  local name="$1"; shift
  echo "== $name: $*"
  nas proxy-check "${common[@]}" "${against[@]}" "$@" --json > "$storage/proxy-study-$name.json"
}
check readme-as-was      --epochs 2 --batch-size 64 --max-train-samples 2000
check readme-bn          --epochs 2 --batch-size 64 --max-train-samples 2000 --bn-recalibration-batches 8
check space-batch        --epochs 2 --batch-size 256 --max-train-samples 4000
check space-batch-bn     --epochs 2 --batch-size 256 --max-train-samples 4000 --bn-recalibration-batches 8
check more-data-bn       --epochs 1 --batch-size 64 --max-train-samples 4000 --bn-recalibration-batches 8
