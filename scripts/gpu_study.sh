#!/usr/bin/env bash
# The GPU measurements, on any CUDA machine with nas installed (pip install -e .) and Fashion-MNIST
# available (Debian's dataset-fashion-mnist, or NAS_DATA_DIR pointing at the four IDX .gz files).
# Each phase is time-boxed, writes its logs, a sampled nvidia-smi trace (appended, one file for all phases)
# and its run folder to OUT (default ./gpu-study), and can be started again to continue.
#
#   bash scripts/gpu_study.sh quick            # the first look, <= 8 minutes on one H100, each part time-boxed,
#                                              #   results written as they come (summary.txt): (a) a B0 proxy
#                                              #   trial cold and warm beside a naive DataLoader pipeline, (b) a
#                                              #   100-trial search at 4 trials per GPU on a reduced proxy:
#                                              #   trials/hour and GPU busy %, (c) the CUDA tests
#   bash scripts/gpu_study.sh quick smoke      # the same end to end on a CPU, tiny (checks the script, not a GPU)
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
sampler=""
if command -v nvidia-smi >/dev/null; then
  echo "# phase $1 from $(date -u +%FT%TZ)" >> "$OUT/gpu.csv"
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -l 2 >> "$OUT/gpu.csv" 2>/dev/null &
  sampler=$!
fi
trap '[ -n "$sampler" ] && kill $sampler 2>/dev/null || true' EXIT
need_pytest() {  # the CUDA tests are part of the record: say so when they cannot run, never skip silently
  python3 -c "import pytest" 2>/dev/null && return 0
  echo "pytest is not installed here: the CUDA tests were NOT run" | tee -a "$OUT/summary.txt" >&2
  return 1
}
runs="$OUT/runs"
mkdir -p "$runs"

phase="${1:?usage: gpu_study.sh quick [smoke] | evaluator | search K MIN | scale MIN | fidelity MIN | supernet EPOCHS MIN | reproduce MIN}"
case "$phase" in
  quick)
    smoke="${2:-}"
    started=$(date +%s)
    summary="$OUT/summary.txt"
    echo "# gpu_study quick $(date -u +%FT%TZ) ${smoke:+(smoke: CPU, tiny settings)}" >> "$summary"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$summary" 2>/dev/null || true
    # (a) the proxy trial, cold and warm, beside a naive pipeline: 3 minutes at most
    evaluator=(--proxy-only --json "$OUT/quick-evaluator.jsonl"); [ -n "$smoke" ] && evaluator+=(--quick --device cpu)
    timeout --signal=KILL 180 python3 scripts/bench_evaluator.py "${evaluator[@]}" > "$OUT/quick-evaluator.log" 2>&1 \
      || echo "(a) proxy trials: stopped at the time box or failed (see quick-evaluator.log)" >> "$summary"
    python3 - "$OUT/quick-evaluator.jsonl" >> "$summary" <<'PY' || true
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
for row in rows:
    print(f"(a) {row['name']}: {row['seconds']:.1f} s, val accuracy {row['accuracy']:.4f}")
PY
    # (b) a 100-trial search at 4 trials per GPU on a reduced proxy: 4 minutes at most
    name="quick-search"; search_start=$(date +%s)
    flags=(--controller evolution --trials 100 --concurrency 4 --address local --storage "$runs" --name "$name"
           --progress-seconds 30)
    if [ -n "$smoke" ]; then
      flags+=(--data synthetic --epochs 1 --resolution 8 --max-train-samples 256 --max-val-samples 64
              --concurrency 2 --cpus-per-trial 1 --trials 6)
    else
      flags+=(--data fashion_mnist --epochs 2 --max-train-samples 10000 --max-val-samples 2000
              --gpus-per-trial 0.25 --cpus-per-trial 2)
    fi
    resume=(); [ -f "$runs/$name/trials.db" ] && resume=(--resume "$runs/$name")
    timeout --signal=KILL 240 python3 scripts/search.py "${flags[@]}" "${resume[@]}" > "$OUT/quick-search.log" 2>&1 || true
    python3 - "$runs/$name" "$OUT/gpu.csv" "$search_start" >> "$summary" <<'PY' || true
import datetime, sqlite3, sys
db = sqlite3.connect(f"{sys.argv[1]}/trials.db")
rows = db.execute("SELECT status, started_at, finished_at FROM trials WHERE status != 'running'").fetchall()
if rows:
    span = max(r[2] for r in rows) - min(r[1] for r in rows)
    ok = sum(r[0] == "ok" for r in rows)
    print(f"(b) search: {len(rows)} finished ({ok} ok) in {span / 60:.1f} min: {len(rows) / span * 3600:.0f} trials/hour")
busy = []
try:
    start = float(sys.argv[3])
    for line in open(sys.argv[2]):
        parts = [p.strip() for p in line.split(",")]
        if line.startswith("#") or len(parts) < 3:
            continue
        stamp = datetime.datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
        if stamp >= start:
            busy.append(float(parts[1].split()[0]))
except (OSError, ValueError):
    pass
print(f"(b) GPU busy during the search: {sum(busy) / len(busy):.0f} % (mean of {len(busy)} samples)" if busy
      else "(b) GPU busy: no nvidia-smi samples")
PY
    # (c) the CUDA tests: what is left of the 8 minutes, 2 at least
    left=$(( 480 - ($(date +%s) - started) )); [ "$left" -lt 120 ] && left=120
    if need_pytest; then
      timeout --signal=KILL "$left" python3 -m pytest -q -m gpu -p no:cacheprovider tests > "$OUT/quick-tests.log" 2>&1 || true
      echo "(c) CUDA tests: $(tail -n 1 "$OUT/quick-tests.log")" >> "$summary"
    fi
    echo "quick: $(( $(date +%s) - started )) s in all" >> "$summary"
    cat "$summary"
    ;;
  evaluator)
    nvidia-smi > "$OUT/nvidia-smi.txt" || true
    timeout --signal=KILL 1200 python3 scripts/bench_evaluator.py --json "$OUT/bench.jsonl" 2>&1 \
      | tee "$OUT/bench_evaluator.log" || true   # the rows measured before a kill are in bench.jsonl
    if need_pytest; then
      timeout --signal=KILL 600 python3 -m pytest -q -m gpu tests 2>&1 | tee "$OUT/gpu_tests.log" || true
    fi
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
