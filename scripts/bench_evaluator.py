"""Benchmark the proxy evaluator side by side, in one process, and print a table of ratios.

1. Proxy evaluation: EfficientNet-B0 on Fashion-MNIST (32×32, 5 epochs over the 50 000 training
   images), timed as a trial lives it — a never-seen architecture, from model build to validation
   accuracy — with ``nas.training.evaluate`` (device-resident uint8 data, on-device augmentation, bf16,
   channels-last, fused optimizer) vs a naive pipeline (torchvision DataLoader + transforms, fp32,
   NCHW) on the same device.
2. Training speed at 224×224, batch 256: our B0 vs timm ``efficientnet_b0`` eager and compiled
   (when timm is importable), img/s on synthetic input.
3. The B0 proxy accuracy after the epochs of (1).

``--quick`` shrinks everything (a few hundred images, 1 epoch, 64 px, small batches) so the
script can be checked on a CPU; its numbers say nothing about a GPU.

    python scripts/bench_evaluator.py            # on the GPU machine
    python scripts/bench_evaluator.py --quick    # smoke run anywhere
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from nas import space
from nas.core.arch import Architecture
from nas.network import builder as model
from nas.settings import ProxySettings
from nas.training import data
from nas.training.evaluate import Task, evaluate
from nas.training.trainer import lr_schedule, make_optimizer, resolve_device

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    name: str
    seconds: float | None = None
    rate: float | None = None  # img/s
    accuracy: float | None = None
    note: str = ""


def fresh(arch: Architecture, k: int) -> Architecture:
    """A never-seen variant of ``arch`` (every stage 8·k channels wider): new shapes, same structure."""
    if k == 0:
        return arch
    return replace(arch, stages=tuple(replace(s, channels=s.channels + 8 * k) for s in arch.stages))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def warm_context(device: torch.device) -> None:
    """Create the CUDA context, cuBLAS handles and the allocator on an unrelated model, so no
    pipeline is charged for process start-up."""
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10)).to(device)
    x = torch.randn(4, 3, 16, 16, device=device)
    net(x).sum().backward()
    sync(device)


# ---------------------------------------------------------------- 1. proxy evaluation


def ours(arch: Architecture, task: Task) -> Row:
    start = time.perf_counter()
    result = evaluate(arch, task)
    wall = time.perf_counter() - start
    n = (task.proxy.max_train_samples or 50_000) * task.proxy.epochs
    return Row("", result.train_seconds, n / result.train_seconds, result.accuracy,
               result.error or f"call {wall:.1f} s")


class _Images(torch.utils.data.Dataset):
    """PIL images from the same decoded arrays: the usual torchvision-style dataset."""

    def __init__(self, images: data.Images, transform: object) -> None:
        self.images, self.labels, self.transform = images.images.numpy(), images.labels.tolist(), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i, 0])), self.labels[i]  # type: ignore[operator]


def naive(arch: Architecture, task: Task, device: torch.device, workers: int) -> Row:
    """What a user writes first: DataLoader workers, per-image PIL transforms, fp32, NCHW, plain SGD."""
    from torchvision import transforms

    proxy = data.for_proxy(task.proxy, seed=task.seed, device="cpu")
    norm = transforms.Normalize(proxy.mean, proxy.std)
    train_tf = transforms.Compose([transforms.RandomCrop(task.proxy.resolution, padding=4),
                                   transforms.RandomHorizontalFlip(), transforms.ToTensor(), norm])
    eval_tf = transforms.Compose([transforms.ToTensor(), norm])
    cfg = task.proxy
    loader = torch.utils.data.DataLoader(_Images(proxy.train, train_tf), batch_size=cfg.batch_size, shuffle=True,
                                         num_workers=workers, pin_memory=device.type == "cuda", drop_last=True)
    val = torch.utils.data.DataLoader(_Images(proxy.eval, eval_tf), batch_size=cfg.eval_batch_size,
                                      num_workers=workers)
    start = time.perf_counter()
    torch.manual_seed(task.seed)
    net = model.build(arch.adapted(stem_stride=cfg.stem_stride, drop_downsamples=cfg.drop_downsamples),
                      num_classes=10, in_channels=1, dropout=task.dropout).to(device)
    optimizer = make_optimizer(net, cfg, fused=False)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    schedule, step = lr_schedule(cfg, len(loader)), 0
    for _ in range(cfg.epochs):
        net.train()
        for x, y in loader:
            for group in optimizer.param_groups:
                group["lr"] = schedule(step)
            loss = criterion(net(x.to(device, non_blocking=True)), y.to(device, non_blocking=True))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    net.eval()
    correct = 0
    with torch.inference_mode():
        for x, y in val:
            correct += int((net(x.to(device)).argmax(1).cpu() == y).sum())
    sync(device)
    seconds = time.perf_counter() - start
    return Row("", seconds, len(proxy.train) * cfg.epochs / seconds, correct / len(proxy.eval),
               f"{workers} DataLoader workers")


# ---------------------------------------------------------------- 2. training speed


def train_speed(net: nn.Module, device: torch.device, *, resolution: int, batch: int, steps: int,
                warmup: int) -> float:
    """img/s of full training steps (forward, backward, fused SGD) on random input, bf16 on CUDA."""
    cuda = device.type == "cuda"
    net = net.to(device).train()
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, resolution, resolution, device=device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)
    optimizer = make_optimizer(net, ProxySettings(), fused=cuda)
    criterion = nn.CrossEntropyLoss()
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = criterion(net(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return batch * steps / (time.perf_counter() - start)


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke run, e.g. on a CPU")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, help="proxy epochs (default 5; 1 with --quick)")
    parser.add_argument("--workers", type=int, help="naive pipeline's DataLoader workers (default min(8, CPUs))")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile rows (default on CUDA)")
    parser.add_argument("--proxy-only", action="store_true", help="only part 1 (the proxy trials), not the "
                                                                   "training-speed comparison")
    parser.add_argument("--json", type=Path, help="also write the rows here, one JSON line each as it is measured "
                                                  "(a run killed halfway keeps what it measured)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    quick = args.quick
    b0 = space.load_architecture(str(ROOT / "search_spaces" / "efficientnet_b0.yaml"))
    epochs = args.epochs or (1 if quick else 5)
    task = Task(device=str(device), seed=0,
                proxy=ProxySettings(epochs=epochs, batch_size=32 if quick else 256, lr=0.1,
                                    max_train_samples=256 if quick else None, max_val_samples=128 if quick else None))
    workers = args.workers if args.workers is not None else min(8, os.cpu_count() or 1)
    data.for_proxy(task.proxy, seed=task.seed, device=device)  # loaded once per process: not a trial's cost
    warm_context(device)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    if args.json:
        args.json.write_text("")

    def record(kind: str, row: Row) -> Row:
        print(f"[{kind}] {row.name}: {vars(row)}", flush=True)
        if args.json:
            with args.json.open("a") as out:
                out.write(json.dumps({"kind": kind, "device": name, "date": str(datetime.date.today()),
                                      "quick": quick, **vars(row)}) + "\n")
        return row

    rows: list[Row] = []
    r = ours(b0, task)
    r.name = "ours: B0, cold (first trial of the process), cudnn.benchmark off"
    rows.append(record("proxy", r))
    r = ours(b0, task)
    r.name = "ours: B0, warm (the same again)"
    rows.append(record("proxy", r))
    if device.type == "cuda":
        r = ours(fresh(b0, 1), task.with_proxy(cudnn_benchmark=True))
        r.name = "ours: never-seen B0 variant (+8 ch), cudnn.benchmark on"
        rows.append(record("proxy", r))
    r = naive(b0, task, device, workers)
    r.name = "naive: DataLoader + transforms, fp32, NCHW"
    rows.append(record("proxy", r))

    if args.proxy_only:
        print(f"# bench_evaluator  {datetime.date.today()}  device: {name}  (proxy trials only)")
        base = rows[-1].seconds
        for row in rows:
            print(f"{row.name:<64} {row.seconds:>7.1f} s  val acc {row.accuracy:.4f}  {base / row.seconds:.2f}x")
        return
    resolution, batch = (64, 16) if quick else (224, 256)
    steps, warmup = (3, 1) if quick else (50, 10)
    compile_rows = args.compile or device.type == "cuda"
    speed: list[Row] = []
    torch.manual_seed(0)
    speed.append(Row("ours B0 eager", rate=train_speed(model.build(b0), device, resolution=resolution, batch=batch,
                                                       steps=steps, warmup=warmup)))
    if compile_rows:
        speed.append(Row("ours B0 torch.compile", rate=train_speed(torch.compile(model.build(b0)), device,
                                                                   resolution=resolution, batch=batch, steps=steps,
                                                                   warmup=warmup)))
    try:
        import timm
    except ImportError:
        speed.append(Row("timm efficientnet_b0", note="timm not importable: not measured"))
    else:
        speed.append(Row("timm efficientnet_b0 eager", rate=train_speed(timm.create_model("efficientnet_b0"), device,
                                                                        resolution=resolution, batch=batch,
                                                                        steps=steps, warmup=warmup)))
        if compile_rows:
            speed.append(Row("timm efficientnet_b0 torch.compile",
                             rate=train_speed(torch.compile(timm.create_model("efficientnet_b0")), device,
                                              resolution=resolution, batch=batch, steps=steps, warmup=warmup)))

    for row in speed:
        record("speed", row)
    print(f"# bench_evaluator  {datetime.date.today()}  device: {name}  torch {torch.__version__}"
          f"{'  (--quick: smoke settings)' if quick else ''}")
    n_train = task.proxy.max_train_samples or 50_000
    print(f"\n1. proxy evaluation: B0 on Fashion-MNIST 32x32, {epochs} epoch(s) x {n_train} images, "
          "model build -> val accuracy")
    base = rows[-1].seconds
    print(f"{'pipeline':<58} {'seconds':>8} {'img/s':>9} {'evals/h':>8} {'val acc':>8} {'speed-up':>9}")
    for row in rows:
        print(f"{row.name:<58} {row.seconds:>8.1f} {row.rate:>9.0f} {3600 / row.seconds:>8.0f} "
              f"{row.accuracy if row.accuracy is not None else math.nan:>8.4f} {base / row.seconds:>8.2f}x"
              f"  {row.note}")
    print(f"\n2. training speed: B0, {resolution}x{resolution}, batch {batch}"
          f"{', bf16 channels-last' if device.type == 'cuda' else ', fp32'}")
    reference = next((s.rate for s in reversed(speed) if s.name.startswith("timm") and s.rate), None)
    print(f"{'model':<40} {'img/s':>9} {'vs timm (last measured)':>24}")
    for row in speed:
        ratio = f"{row.rate / reference:.2f}x" if row.rate and reference else "-"
        rate = f"{row.rate:.0f}" if row.rate else "-"
        print(f"{row.name:<40} {rate:>9} {ratio:>24}  {row.note}")
    print(f"\n3. B0 proxy accuracy after {epochs} epoch(s): {rows[0].accuracy:.4f} (ours), "
          f"{rows[-1].accuracy:.4f} (naive)")


if __name__ == "__main__":
    main()
