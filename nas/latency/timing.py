"""Timing a module at batch 1 on this machine, in ONNX Runtime or in torch, the same way for a part and for a
whole network (so the parts and the networks they predict are measured alike).

``onnxruntime``: the module is exported to ONNX in memory and run by an ``InferenceSession`` on the CPU with
``threads`` intra-op threads and full graph optimisation (conv, batch norm and activation fused), as a
deployment would run it. ``onnxruntime-int8``: the same model quantized to int8 (:mod:`nas.latency.int8`,
calibrated on random inputs: ranges change accuracy, not time). ``torch``: eager ``inference_mode`` with
``torch.set_num_threads(threads)``.
A time is measured against a reference layer timed just before and after it (:meth:`Timer.fastest`): on a
shared machine whatever slows the module down for a while (measured on a 2-core virtual machine: phases of a
second to tens of seconds in which every call is a third slower) slows the reference too, and the ratio
stays. A table stores ratios and the reference's own fastest time, so its milliseconds are those of the
machine at its fastest; on a quiet machine the reference never changes and the ratio is the time.
"""

from __future__ import annotations

import io
import math
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import torch
from torch import nn

from nas.core.arch import Architecture, Layer
from nas.core.errors import NasError
from nas.latency.int8 import quantize, random_inputs
from nas.latency.parts import Part
from nas.network.blocks import Block, feature_mix_module, part_module
from nas.network.builder import build, layer_tuple

WARMUP = 2
ROUNDS = 8
CALLS = 2
CHUNK = 100
NETWORKS_AT_ONCE = 16
REFERENCE_CALLS = 2
T = TypeVar("T")


REFERENCE = Part("layer", "relu", 40, 28, layer=Layer(stage=0, op="ir", kernel=3, stride=1, expand=6.0, in_channels=40,
                                                        out_channels=40, se=0.0, skip="identity"))
"""The layer every time is measured against (an MBConv 6, 3×3, 40 channels at 28², about half a millisecond on
one thread of a laptop-class CPU): whatever slows the machine for a while slows it too."""


def part_network(part: Part) -> tuple[nn.Module, tuple[int, ...]]:
    """The module a part is (eval mode) and its batch-1 input shape: built by the network's own code."""
    if part.kind == "stem":
        module = part_module(("conv", part.channels, part.out_channels, 3, part.stride, 1, part.act))
    elif part.kind == "head":
        head = [part_module(("conv", part.channels, part.out_channels, 1, 1, 1, part.act))] if part.out_channels else []
        features = part.out_channels or part.channels
        mix = [feature_mix_module(features, part.mix, part.act)] if part.mix else []
        features = part.mix or features
        module = nn.Sequential(*head, nn.AdaptiveAvgPool2d(1), *mix, nn.Flatten(1), nn.Linear(features, part.classes))
    else:
        module = Block(*layer_tuple(part.layer, part.act), 0.0)  # type: ignore[arg-type]
    return module.eval(), (1, part.channels, part.size, part.size)


def whole_network(arch: Architecture, *, num_classes: int, in_channels: int, resolution: int
                  ) -> tuple[nn.Module, tuple[int, ...]]:
    return build(arch, num_classes=num_classes, in_channels=in_channels).eval(), (1, in_channels, resolution,
                                                                                 resolution)


def onnx_bytes(module: nn.Module, example: torch.Tensor, *, dynamic_batch: bool = False) -> bytes:
    """``module`` as an ONNX model, in memory. torch's TorchScript-based exporter takes tens of milliseconds
    where ``torch.export``'s takes seconds, which matters for thousands of parts; where it is gone, the
    latter is used. ONNX Runtime optimises both graphs to the same kernels."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, (example,), buffer, dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "batch"}} if dynamic_batch else None)
            return buffer.getvalue()
        except (TypeError, RuntimeError, ImportError):
            program = torch.onnx.export(module, (example,), dynamo=True, verbose=False)
            return program.model_proto.SerializeToString()


class Timer:
    """Times modules on ``runtime`` with ``threads`` threads (see the module docstring)."""

    def __init__(self, runtime: str, threads: int) -> None:
        if runtime.startswith("onnxruntime"):
            try:
                import onnxruntime  # noqa: F401
            except ModuleNotFoundError:
                raise NasError("timing on onnxruntime needs it installed: pip install 'nas[latency]'") from None
        elif runtime != "torch":
            raise NasError(f"unknown runtime {runtime!r}; use onnxruntime, onnxruntime-int8 or torch")
        self.runtime, self.threads = runtime, threads

    def prepare(self, module: nn.Module, shape: tuple[int, ...]) -> Callable[[], Any]:
        """One batch-1 call of ``module`` on an input of ``shape``, ready to time (exported and loaded once)."""
        example = torch.randn(shape)
        if self.runtime == "onnxruntime":
            return self.onnx_call(onnx_bytes(module, example), example)
        if self.runtime == "onnxruntime-int8":
            return self.onnx_call(quantize(onnx_bytes(module, example), random_inputs(shape)), example)
        torch.set_num_threads(self.threads)

        def call() -> None:
            with torch.inference_mode():
                module(example)
        return call

    def onnx_call(self, model: bytes | str, example: torch.Tensor) -> Callable[[], Any]:
        """One call of an ONNX model (its bytes, or a file) on ``example`` in an ONNX Runtime CPU session."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: example.numpy()}
        return lambda: session.run(None, feed)

    def fastest(self, items: Sequence[T], build: Callable[[T], tuple[nn.Module, tuple[int, ...]]] | None = None, *,
                prepare: Callable[[T], Callable[[], Any]] | None = None, rounds: int = ROUNDS, calls: int = CALLS,
                chunk: int = CHUNK, done: Callable[[int, float], None] | None = None) -> list[float]:
        """Each item timed against the reference layer (:data:`REFERENCE`): the fastest of ``calls`` batch-1
        calls over the fastest of the reference's just before and just after, the median of that ratio over
        ``rounds`` rounds. An item is a module (``build(item)`` gives it and its input shape) or any call
        (``prepare(item)``). Items are prepared ``chunk`` at a time, and a round goes over the whole chunk, so
        an item's rounds are spread over seconds. ``done(index, ratio)`` is called as each is finished."""
        if prepare is None:
            if build is None:
                raise TypeError("give build or prepare")
            prepare = lambda item: self.prepare(*build(item))  # noqa: E731
        reference = self.prepare(*part_network(REFERENCE))
        out = [math.inf] * len(items)
        for begin in range(0, len(items), chunk):
            indices = range(begin, min(begin + chunk, len(items)))
            prepared = [prepare(items[i]) for i in indices]
            for call in [reference, *prepared]:
                for _ in range(WARMUP):
                    call()
            ratios: dict[int, list[float]] = {i: [] for i in indices}
            before = _fastest_call(reference, REFERENCE_CALLS)
            for _ in range(rounds):
                for i, call in zip(indices, prepared):
                    took = _fastest_call(call, calls)
                    after = _fastest_call(reference, REFERENCE_CALLS)
                    ratios[i].append(took / min(before, after))
                    before = after
            for i in indices:
                out[i] = statistics.median(ratios[i])
                if done is not None:
                    done(i, out[i])
        return out

    def reference_ms(self, seconds: float = 20.0) -> float:
        """The reference layer's fastest time (ms) over ``seconds``: the unit :meth:`fastest`'s ratios are in."""
        call = self.prepare(*part_network(REFERENCE))
        best, end = math.inf, time.monotonic() + seconds
        while time.monotonic() < end:
            best = min(best, _fastest_call(call, 5))
        return best * 1e3


def _fastest_call(call: Callable[[], Any], calls: int) -> float:
    best = math.inf
    for _ in range(calls):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def device_info(runtime: str, threads: int, rounds: int) -> dict[str, Any]:
    """What a table was measured on, and how."""
    info: dict[str, Any] = {"runtime": runtime, "threads": threads, "torch": torch.__version__,
                            "cpu": cpu_model(), "machine": platform.machine(), "cores": os.cpu_count(),
                            "statistic": f"median over {rounds} rounds of the fastest of {CALLS} batch-1 calls, "
                                         "relative to the reference layer timed before and after",
                            "date": datetime.now(UTC).strftime("%Y-%m-%d")}
    if runtime.startswith("onnxruntime"):
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    return info


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


__all__ = ["Timer", "device_info", "onnx_bytes", "part_network", "whole_network"]
