#!/usr/bin/env bash
# The GPU measurements, on any CUDA machine with nas installed (pip install -e .) and Fashion-MNIST
# available (Debian's dataset-fashion-mnist, or NAS_DATA_DIR pointing at the four IDX .gz files).
# Each phase is time-boxed, writes its logs, a sampled nvidia-smi trace and its run folder to OUT
# (default ./gpu-study), and can be started again to continue.
#
#   bash scripts/gpu_study.sh evaluator        # scripts/bench_evaluator.py (ours vs naive vs timm,
#                                              #   B0 proxy accuracy) and the GPU tests (-m gpu)
#   bash scripts/gpu_study.sh search K MIN     # evolution on Fashion-MNIST, K trials per GPU, MIN minutes
#                                              #   (trials/hour at K); started again, it resumes
#   bash scripts/gpu_study.sh scale MIN        # the alpha-beta-gamma grid search, time-boxed
#   bash scripts/gpu_study.sh fidelity MIN     # nas proxy-check: the space's own proxy (5 epochs, 50k images,
#                                              #   32 px) against 20 epochs, 20 architectures x 2 seeds
#   bash scripts/gpu_study.sh supernet EPOCHS MIN  # after fidelity: supernets (crop, separate, distilled)
#                                              #   trained EPOCHS epochs on the same proxy; Kendall tau against
#                                              #   its stand-alone accuracies, seconds per candidate vs training
#   bash scripts/gpu_study.sh reproduce MIN    # nas reproduce --preset gpu
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-study}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 2 > "$OUT/gpu.csv" 2>/dev/null &
sampler=$!
trap 'kill $sampler 2>/dev/null || true' EXIT
runs="$OUT/runs"
mkdir -p "$runs"

phase="${1:?usage: gpu_study.sh evaluator | search K MIN | scale MIN | fidelity MIN | supernet EPOCHS MIN | reproduce MIN}"
case "$phase" in
  evaluator)
    nvidia-smi > "$OUT/nvidia-smi.txt" || true
    python3 scripts/bench_evaluator.py --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench_evaluator.log"
    python3 -m pytest -q -m gpu tests/test_train.py tests/test_evaluate.py 2>&1 | tee "$OUT/gpu_tests.log" || true
    ;;
  search)
    per_gpu="${2:?trials per GPU}"; minutes="${3:?minutes}"
    name="gpu-evolution-x$per_gpu"
    flags=(--controller evolution --data fashion_mnist --trials 1000 --concurrency "$per_gpu"
           --gpus-per-trial "$(python3 -c "print(1 / $per_gpu)")" --cpus-per-trial 2 --address local
           --storage "$runs" --name "$name" --progress-seconds 30)
    resume=(); [ -f "$runs/$name/trials.db" ] && resume=(--resume "$runs/$name")
    timeout --signal=KILL "$((minutes * 60))" python3 scripts/search.py "${flags[@]}" "${resume[@]}" \
      2>&1 | tee "$OUT/search-x$per_gpu.log" || true   # killed at the time box: --resume continues it
    python3 - "$runs/$name" <<'PY' | tee "$OUT/search-x$per_gpu-summary.txt"
import sqlite3, sys
db = sqlite3.connect(f"{sys.argv[1]}/trials.db")
rows = db.execute("SELECT status, started_at, finished_at FROM trials WHERE status != 'running'").fetchall()
ok = [r for r in rows if r[0] == "ok"]
if rows:
    span = max(r[2] for r in rows) - min(r[1] for r in rows)
    print(f"{len(rows)} finished ({len(ok)} ok) in {span / 60:.1f} min of trial time: {len(rows) / span * 3600:.0f} trials/hour")
PY
    tar czf "$OUT/runs-$name.tgz" -C "$runs" "$name"
    ;;
  scale)
    minutes="${2:?minutes}"
    timeout --signal=KILL "$((minutes * 60))" python3 scripts/scale.py search_spaces/efficientnet_b0.yaml \
      --name b0-scaling --storage "$runs" --data fashion_mnist --gpus-per-trial 0.25 --concurrency 4 \
      --compare-phis 1 2 2>&1 | tee "$OUT/scale.log" || true
    tar czf "$OUT/runs-b0-scaling.tgz" -C "$runs" b0-scaling
    ;;
  fidelity)
    minutes="${2:?minutes}"
    timeout --signal=KILL "$((minutes * 60))" nas proxy-check mnasnet --archs 18 --seeds 2 --storage "$runs" \
      --name gpu-fidelity --gpus-per-trial 0.25 --concurrency 4 --cpus-per-trial 2 --address local \
      --against "--epochs 20" --json > "$OUT/fidelity.json" 2> "$OUT/fidelity.log" || true
    ;;
  supernet)
    epochs="${2:?supernet epochs}"; minutes="${3:?minutes}"
    [ -s "$OUT/fidelity.json" ] || { echo "run the fidelity phase first (it writes $OUT/fidelity.json)" >&2; exit 2; }
    timeout --signal=KILL "$((minutes * 60))" python3 scripts/bench_supernet.py "$OUT/fidelity.json" --device auto \
      --variants crop-sandwich,crop-sandwich-distill,separate-sandwich --epochs "$epochs" --timed 3 \
      --folder "$runs/supernet-bench" 2>&1 | tee "$OUT/supernet.log" || true   # started again, it resumes
    ;;
  reproduce)
    minutes="${2:?minutes}"
    timeout --signal=KILL "$((minutes * 60))" nas reproduce --preset gpu --storage "$runs" \
      2>&1 | tee "$OUT/reproduce.log" || true   # started again, it resumes
    ;;
  *) echo "unknown phase $phase" >&2; exit 2 ;;
esac
