#!/usr/bin/env bash
# Early stopping at CPU scale on real Fashion-MNIST: the same wall-clock budget per run, three seeds,
# regularized evolution, a 4-epoch proxy (ASHA may stop a trial after 1 or 3 epochs). Arms: no scheduler
# (none), ASHA telling the controller a stopped trial's last reward (asha), ASHA telling it a failure
# (asha-failure).
#   bash scripts/cpu_scheduler_study.sh [STORAGE] [SECONDS] ["ARMS"]    # SECONDS per run (default 480)
set -euo pipefail
storage="${1:-runs/scheduler-study}"; budget="${2:-480}"; read -r -a arms <<< "${3:-none asha asha-failure}"
proxy=(--epochs 4 --resolution 16 --batch-size 64 --max-train-samples 2000 --max-val-samples 1000
       --bn-recalibration-batches 8)
for seed in 0 1 2; do
  for arm in "${arms[@]}"; do
    told=partial; [[ "$arm" == *-failure ]] && told=failure
    nas search --controller evolution --option population_size=16 --option sample_size=4 --seed "$seed" \
      --scheduler "${arm%%-*}" --tell-stopped "$told" --grace-period 1 --reduction-factor 3 "${proxy[@]}" \
      --trials 100000 --time-budget "$budget" --concurrency 2 --storage "$storage" --name "$arm-s$seed" \
      --progress-seconds 60 --address local
  done
done
python3 - "$storage" <<'PY'
import sqlite3, statistics, sys
from pathlib import Path
rows = {}
for run in sorted(Path(sys.argv[1]).iterdir()):
    db = sqlite3.connect(run / "trials.db")
    counts = dict(db.execute("SELECT status, COUNT(*) FROM trials GROUP BY status").fetchall())
    best = db.execute("SELECT MAX(reward) FROM trials WHERE status = 'ok'").fetchone()[0]
    epochs = db.execute("SELECT SUM(epochs) FROM trials WHERE status IN ('ok', 'stopped')").fetchone()[0]
    rows.setdefault(run.name.rsplit("-", 1)[0], []).append((counts.get("ok", 0), counts.get("stopped", 0), best, epochs))
print("| scheduler | seeds | candidates evaluated (median) | trained to the end | stopped early | epochs trained | best full-fidelity reward (median, min..max) |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for name, runs in rows.items():
    evaluated = [ok + stopped for ok, stopped, _, _ in runs]
    best = [b for *_, b, _ in runs if b is not None]
    print(f"| {name} | {len(runs)} | {statistics.median(evaluated):.0f} | {statistics.median(r[0] for r in runs):.0f} | "
          f"{statistics.median(r[1] for r in runs):.0f} | {statistics.median(r[3] or 0 for r in runs):.0f} | "
          f"{statistics.median(best):.4f} ({min(best):.4f}..{max(best):.4f}) |")
PY
