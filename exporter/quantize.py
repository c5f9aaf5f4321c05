"""Weight quantization of ONNX files with onnxruntime's own tools (shared by the vision and LLM exports)."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime's quantizers log every node at INFO on the root logger and print protobufs."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def quantize_int8_dynamic(
    src: Path, dst: Path, op_types: Sequence[str] | None = None, per_channel: bool = False
) -> None:
    """Dynamic int8: int8 weights stored, activations quantized at run time (MatMulInteger/ConvInteger).

    `op_types` None means onnxruntime's default set (MatMul, Conv, Gather, ...). Weights are int8
    (onnxruntime 1.32 runs ConvInteger with int8 weights; uint8 weights risk saturation on x86).
    """
    with _quiet():
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            op_types_to_quantize=list(op_types) if op_types else None,
        )


def quantize_4bit(
    src: Path,
    dst: Path,
    block_size: int = 32,
    symmetric: bool = True,
    accuracy_level: int | None = None,
    op_types: Sequence[str] = ("MatMul",),
) -> None:
    """4-bit blockwise weights (com.microsoft MatMulNBits; Gather -> GatherBlockQuantized if asked).

    Only MatMuls with a constant weight are rewritten; the rest of the graph stays fp32.
    """
    with _quiet():
        quantizer = MatMulNBitsQuantizer(
            str(src),
            bits=4,
            block_size=block_size,
            is_symmetric=symmetric,
            accuracy_level=accuracy_level,
            op_types_to_quantize=tuple(op_types),
        )
        quantizer.process()
        quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)
