#!/usr/bin/env bash
# A search study at CPU scale: real Fashion-MNIST through in-process Ray.
#  1. trials/hour at 1 trial on 2 cores vs 2 trials on 1 core each: the same 12 architectures
#     (evolution's first population_size asks are seeded random samples, so both runs train the same ones);
#  2. a >= 100-trial evolution search, SIGKILLed (driver and its in-process Ray) after KILL_AT finished
#     trials and finished with --resume: nothing lost, nothing re-run;
#  3. nas report: the Pareto-front PNG.
# Usage: bash scripts/cpu_search_study.sh OUT_DIR [TRIALS] [KILL_AT]   (SKIP_CONCURRENCY=1 skips step 1)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "$1"); trials=${2:-100}; kill_at=${3:-40}
mkdir -p "$out"
proxy=(--data fashion_mnist --epochs 2 --batch-size 32 --resolution 16 --max-train-samples 3000
       --max-val-samples 1000 --address local --progress-seconds 30
       --option population_size=20 --option sample_size=5 --seed 0)
finished() { python - "$1" <<'PY'
import sqlite3, sys
try:
    print(sqlite3.connect(sys.argv[1]).execute("select count(*) from trials where status != 'running'").fetchone()[0])
except sqlite3.Error:
    print(0)
PY
}

for k in 1 2; do
  [ -n "${SKIP_CONCURRENCY:-}" ] && break
  cpus=$((2 / k))
  /usr/bin/time -f "%e s wall" -o "$out/concurrency-$k.time" \
    nas search "${proxy[@]}" --trials 12 --concurrency "$k" --cpus-per-trial "$cpus" \
      --storage "$out/runs" --name "concurrency-$k" --json > "$out/concurrency-$k.log" 2>&1
done

run="$out/runs/evolution-$trials"
setsid nas search "${proxy[@]}" --trials "$trials" --concurrency 2 --cpus-per-trial 1 \
  --storage "$out/runs" --name "evolution-$trials" > "$out/search-part1.log" 2>&1 &
driver=$!
start=$(date +%s)
while [ "$(finished "$run/trials.db")" -lt "$kill_at" ]; do
  kill -0 "$driver" 2>/dev/null || { echo "driver ended early" >&2; exit 1; }
  sleep 2
done
kill -KILL -- -"$driver"; wait "$driver" || true
echo "SIGKILL after $(( $(date +%s) - start )) s with $(finished "$run/trials.db") finished trials" | tee "$out/kill.txt"
python -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))" \
  "$run/trials.db" "$out/before-resume.db"  # what the killed run had stored, to compare after the resume
/usr/bin/time -f "%e s wall" -o "$out/resume.time" \
  nas search --resume "$run" --address local --json > "$out/search-part2.log" 2>&1
nas report "$run" --out "$out/report.html" --png "$out/pareto.png" > "$out/report.log" 2>&1
echo done
