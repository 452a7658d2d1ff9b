"""int8 ONNX: ONNX Runtime's static quantization of a float ONNX model, the same for a network exported to
deploy (``nas export --format onnx-int8``) and for the parts and networks an int8 latency table times.

The model is first pre-processed as ONNX Runtime advises (its graph optimisations: identities removed, batch
norm folded into convolutions, shapes inferred); without it an ``Identity`` between a convolution and its
activation keeps the pair from fusing and int8 runs slower than float. The exporter still matters: both
callers quantize the graph of :func:`nas.latency.timing.onnx_bytes`. Weights are int8 per output channel,
activations uint8 (the U8S8 pairing ONNX Runtime recommends on x86-64), in the QDQ format, with MinMax
ranges from the calibration inputs. On a 2-core AVX2 CPU the EfficientNet-B0
network ran in 16.1 ms this way against 17.9 ms in float, where int8 activations (S8S8) took 46.4 ms.

Calibration sets the ranges activations are quantized to, so it decides accuracy, not speed: a deployed
network is calibrated on images of its dataset; the parts of a latency table on random inputs.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from nas.core.errors import NasError

INPUT = "x"


def quantize(model: bytes, inputs: Iterable[np.ndarray]) -> bytes:
    """``model`` (a float ONNX model's bytes, one input) quantized to int8, calibrated on ``inputs``
    (float32 arrays of the model's input shape)."""
    try:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ModuleNotFoundError:
        raise NasError("int8 quantization needs onnx and onnxruntime: pip install 'nas[latency]'") from None

    name = onnx.load_from_string(model).graph.input[0].name
    feeds = iter([{name: np.asarray(array, dtype=np.float32)} for array in inputs])

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(feeds, None)

    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # quantize_static suggests pre-processing on the root logger
    try:
        with tempfile.TemporaryDirectory() as folder:
            given, prepared, out = (Path(folder) / name for name in ("float.onnx", "prepared.onnx", "int8.onnx"))
            given.write_bytes(model)
            quant_pre_process(given, prepared, skip_symbolic_shape=True)
            quantize_static(prepared, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            return out.read_bytes()
    finally:
        logging.getLogger().setLevel(quiet)


def random_inputs(shape: tuple[int, ...], count: int = 4, seed: int = 0) -> list[np.ndarray]:
    """Standard-normal inputs (what normalized images look like), for quantizing what is only timed."""
    generator = np.random.default_rng(seed)
    return [generator.standard_normal(shape, dtype=np.float32) for _ in range(count)]


__all__ = ["quantize", "random_inputs"]
