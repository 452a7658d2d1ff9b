#!/usr/bin/env bash
# Weight sharing at CPU scale on real Fashion-MNIST, README command 1's proxy:
#  1. a 1,000-candidate search with the supernet evaluator (supernet training included in its wall time);
#  2. the supernet's ranking against stand-alone training: Kendall τ over the architectures of a
#     `nas proxy-check --json` report on the same proxy, and seconds per candidate side by side;
#  3. the search's best five trained stand-alone beside the space's reference points (EfficientNet-B0,
#     MnasNet-A1) on the same proxy, two seeds each.
#   bash scripts/cpu_supernet_study.sh REPORT.json [STORAGE] [SUPERNET_EPOCHS]
set -euo pipefail
report="$1"; storage="${2:-runs/supernet-study}"; epochs="${3:-16}"
proxy=(--resolution 16 --epochs 2 --batch-size 64 --max-train-samples 2000 --bn-recalibration-batches 8)
start=$(date +%s)
nas search --evaluator supernet --supernet-epochs "$epochs" --supernet-bn-batches 4 --max-val-samples 256 \
  --controller evolution --trials 1000 --concurrency 2 "${proxy[@]}" \
  --storage "$storage" --name search --progress-seconds 120 --address local
echo "search wall time: $(( $(date +%s) - start )) s"
python scripts/bench_supernet.py "$report" --trained "$storage/search"
python3 - "$storage/search" <<'PY'
import statistics, sys
from nas import space as spaces
from nas.core.arch import Architecture
from nas import run_folder
from nas.training.evaluate import Task, evaluate
from nas.runs.store import Store

settings, space = run_folder.stored(sys.argv[1])  # the space as the run stored it
with Store.open_readonly(sys.argv[1]) as store:
    best = store.trials(status="ok", order_by="reward", descending=True)[:5]
proxy = settings.proxy.changed(max_val_samples=1000)  # the stand-alone proxy's validation set
tasks = [Task.from_space(space, proxy=proxy, device="cpu", seed=seed) for seed in (0, 1)]
rows = [(f"found-{i + 1}", row.arch, row.accuracy) for i, row in enumerate(best)]
rows += [(name, str(arch), None) for name, arch in spaces.reference_points(space).items()]
print(f"\n| candidate | supernet accuracy ({settings.proxy.max_val_samples} images) | stand-alone accuracy, seeds 0 "
      "and 1 | mean | reward (mean) |")
print("| --- | ---: | ---: | ---: | ---: |")
for name, arch, supernet in rows:
    results = [evaluate(Architecture.parse(arch), task) for task in tasks]
    accuracies = [r.accuracy for r in results if r.ok]
    rewards = [r.reward for r in results if r.ok]
    print(f"| {name} | {'-' if supernet is None else f'{supernet:.3f}'} | "
          f"{', '.join(f'{a:.3f}' for a in accuracies)} | {statistics.mean(accuracies):.3f} | "
          f"{statistics.mean(rewards):.4f} |", flush=True)
PY
