#!/usr/bin/env bash
# Multi-objective early stopping at CPU scale on real Fashion-MNIST: the hypervolume of the full-fidelity
# front after the same wall-clock budget per run, for no scheduler, ASHA (ranks by reward) and MOASHA
# (ranks by non-dominated sorting on accuracy and MACs), under random search and NSGA-II. A 3-epoch proxy
# (16 px, 1,000 training and 500 validation images); both schedulers may stop a trial after 1 or 2 epochs
# (grace period 1, reduction factor 2). Each run trains one trial at a time on one CPU; JOBS runs go at
# once (every run then has JOBS - 1 others beside it, the same for every arm).
#   bash scripts/cpu_moasha_study.sh [STORAGE] [SECONDS] ["SEEDS"] ["CONTROLLERS"] ["SCHEDULERS"] [JOBS]
set -euo pipefail
storage="${1:-runs/moasha-study}"; budget="${2:-360}"; read -r -a seeds <<< "${3:-0 1 2}"
read -r -a controllers <<< "${4:-random nsga2}"; read -r -a schedulers <<< "${5:-none asha moasha}"
jobs="${6:-2}"
proxy="--epochs 3 --resolution 16 --batch-size 64 --max-train-samples 1000 --max-val-samples 500"
proxy+=" --bn-recalibration-batches 2"
mkdir -p "$storage"
for seed in "${seeds[@]}"; do
  for controller in "${controllers[@]}"; do
    options=""; [[ "$controller" == nsga2 ]] && options="--option population_size=8"
    for scheduler in "${schedulers[@]}"; do
      name="$controller-$scheduler-s$seed"
      [[ -f "$storage/$name/trials.db" ]] && continue  # a finished arm is kept when the study is run again
      run="nas search --controller $controller $options --seed $seed --scheduler $scheduler --grace-period 1"
      run+=" --reduction-factor 2 $proxy --trials 100000 --time-budget $budget --concurrency 1"
      run+=" --storage $storage.partial --name $name --progress-seconds 600 --address local"
      echo "rm -rf $storage.partial/$name; $run > $storage/$name.log 2>&1 && mv $storage.partial/$name $storage/$name"
    done
  done
done | xargs -P "$jobs" -I{} bash -c {}
rmdir "$storage.partial" 2>/dev/null || true
python3 - "$storage" <<'PY'
import json, sqlite3, statistics, sys
from pathlib import Path
from nas.core.reward import T_EFFICIENTNET, hypervolume_2d
rows = {}
for run in sorted(p for p in Path(sys.argv[1]).iterdir() if (p / "trials.db").is_file()):
    db = sqlite3.connect(run / "trials.db")
    meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
    box = 4 * float(meta.get("target_macs") or T_EFFICIENTNET)  # the dashboard's box: accuracy [0, 1] x MACs [0, 4T]
    full = db.execute("SELECT accuracy, macs FROM trials WHERE status = 'ok' AND accuracy IS NOT NULL").fetchall()
    stopped = db.execute("SELECT COUNT(*) FROM trials WHERE status = 'stopped'").fetchone()[0]
    epochs = db.execute("SELECT SUM(epochs) FROM trials WHERE status IN ('ok', 'stopped')").fetchone()[0] or 0
    name, seed = run.name.rsplit("-s", 1)
    rows.setdefault(name, []).append((seed, hypervolume_2d(full, (0.0, box)) / box, len(full), stopped, epochs))
print("| controller, scheduler | seeds | hypervolume, median (per seed) | trained to the end | stopped early | epochs trained |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for name, runs in rows.items():
    hv = [r[1] for r in runs]
    print(f"| {name.replace('-', ', ', 1)} | {len(runs)} | {statistics.median(hv):.4f} "
          f"({' / '.join(f'{v:.4f}' for v in hv)}) | {statistics.median(r[2] for r in runs):.0f} | "
          f"{statistics.median(r[3] for r in runs):.0f} | {statistics.median(r[4] for r in runs):.0f} |")
PY
