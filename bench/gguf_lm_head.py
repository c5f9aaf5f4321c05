"""Which form of Gemma 3's 262k-row output projection (lm_head, tied to its Q8_0 embedding) decodes
fastest per byte: one-token MatMul [1, K] x [K, N] in native onnxruntime (CPU, 2 threads).

Forms (N = 262144, K = 640 by default; codes random: speed does not depend on the values):
  q8-as-2x4bit  Q8_0 carried exactly as two 4-bit MatMulNBits parts (what the exporter writes)
  q8-nbits8     Q8_0 carried exactly as one 8-bit MatMulNBits
  q4            one 4-bit MatMulNBits (the size a Q4 lm_head would have; not exact for a Q8_0 GGUF)
  fp32          the weight expanded to float32 (exact; what the WASM engine's load-time expansion does)
Run: .venv/bin/python -m bench.gguf_lm_head [--rows N] [--repeats R]. Prints JSON lines. Needs a quiet
machine for meaningful numbers; the browser (WASM) ranking may differ and is measured by the bench suite.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

BLOCK = 32


def _nbits(name: str, x: str, n: int, k: int, bits: int, rng: np.random.Generator) -> tuple[list, list]:
    kb = k // BLOCK
    packed = rng.integers(0, 256, size=(n, kb, BLOCK * bits // 8), dtype=np.uint8)
    scales = rng.random((n, kb), dtype=np.float32) * 0.01
    zero = np.full((n, (kb + 1) // 2 if bits == 4 else kb), 136 if bits == 4 else 128, np.uint8)
    inits = [
        numpy_helper.from_array(packed, f"{name}.B"),
        numpy_helper.from_array(scales, f"{name}.scales"),
        numpy_helper.from_array(zero, f"{name}.zp"),
    ]
    node = helper.make_node(
        "MatMulNBits",
        [x, f"{name}.B", f"{name}.scales", f"{name}.zp"],
        [name],
        domain="com.microsoft",
        K=k,
        N=n,
        bits=bits,
        block_size=BLOCK,
        accuracy_level=0,
    )
    return [node], inits


def build(form: str, n: int, k: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    if form == "fp32":
        inits.append(numpy_helper.from_array(rng.normal(size=(k, n)).astype(np.float32), "W"))
        nodes.append(helper.make_node("MatMul", ["x", "W"], ["logits"]))
    elif form in ("q4", "q8-nbits8"):
        nodes, inits = _nbits("logits", "x", n, k, 4 if form == "q4" else 8, rng)
    else:  # two 4-bit parts, summed
        for part in ("hi", "lo"):
            made, more = _nbits(part, "x", n, k, 4, rng)
            nodes += made
            inits += more
        nodes.append(helper.make_node("Add", ["hi", "lo"], ["logits"]))
    graph = helper.make_graph(
        nodes,
        "lm_head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, k])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1, n])],
        inits,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
    )


def measure(form: str, n: int, k: int, repeats: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lm_head.onnx"
        onnx.save(build(form, n, k), path, save_as_external_data=True, location="lm_head.onnx_data")
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(size=(1, 1, k)).astype(np.float32)
    session.run(None, {"x": x})  # warm-up (pre-packing)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {"x": x})
        times.append(time.perf_counter() - start)
    return {
        "form": form,
        "rows": n,
        "k": k,
        "bytes": size,
        "median_ms": 1000 * float(np.median(times)),
        "threads": threads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=262144)
    parser.add_argument("--k", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for form in ("q8-as-2x4bit", "q8-nbits8", "q4", "fp32"):
        print(json.dumps(measure(form, args.rows, args.k, args.repeats, args.threads)), flush=True)


if __name__ == "__main__":
    main()
