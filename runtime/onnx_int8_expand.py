"""Dynamic int8 products -> fp32 MatMul / Conv with weights dequantized once: the Python twin of
web/src/engine/runtime/onnx_int8_expand.ts (written separately, with the onnx library, so each
checks the other).

onnxruntime's quantize_dynamic writes, per product (x fp32, Wq int8/uint8 constant):
    (xq, xs, xzp) = DynamicQuantizeLinear(x)
    y = MatMulInteger(xq, Wq, xzp, Wzp)   or   ConvInteger(xq, Wq, xzp, Wzp) {conv attributes}
    out = Mul(Cast(y, to=float), Mul(xs, Ws))
which becomes out = MatMul(x, (Wq - Wzp) * Ws) or Conv(x, (Wq - Wzp) * Ws). The browser runs this
form on WASM (fp32 GEMM is far faster there than MatMulInteger); here it is the reference the
browser's embeddings are compared with, and what the exporter's parity report measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

_PRODUCTS = {"MatMulInteger": "MatMul", "ConvInteger": "Conv"}


@dataclass
class Expanded:
    model: onnx.ModelProto
    products: int  # MatMulInteger / ConvInteger nodes rewritten
    dynamic_quantize_left: int  # DynamicQuantizeLinear nodes still in the graph


def _weight(wq: np.ndarray, zp: np.ndarray | None, scale: np.ndarray, conv: bool) -> np.ndarray | None:
    """(Wq - zp) * scale, per tensor or per output channel (MatMul [K, N]: axis 1; Conv [O, ...]: axis 0)."""
    channels = wq.shape[0] if conv else wq.shape[1]
    if scale.size not in (1, channels) or (zp is not None and zp.size not in (1, channels)):
        return None
    if conv and scale.size != 1:
        return None
    shape = (-1,) + (1,) * (wq.ndim - 1) if conv else (1, -1)
    z = np.zeros(1, np.float32) if zp is None else zp.astype(np.float32).reshape(shape if zp.size > 1 else (1,))
    s = scale.astype(np.float32).reshape(shape if scale.size > 1 else (1,))
    return ((wq.astype(np.float32) - z) * s).astype(np.float32)


def expand_int8_weights(model: onnx.ModelProto) -> Expanded:
    """A copy of `model` with its dynamic int8 products in fp32 (products not in the pattern stay as they are)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    replaced: dict[int, onnx.NodeProto] = {}  # id(product) -> fp32 node
    removed: set[int] = set()  # Cast + output Mul of each rewritten product
    new_inits: list[TensorProto] = []
    for node in graph.node:
        if node.op_type not in _PRODUCTS or node.domain not in ("", "ai.onnx"):
            continue
        xq, wq_name, xzp = node.input[0], node.input[1], node.input[2]
        wzp_name = node.input[3] if len(node.input) > 3 else ""
        dql = producer.get(xq)
        if dql is None or dql.op_type != "DynamicQuantizeLinear" or dql.output[2] != xzp:
            continue
        if wq_name not in inits or (wzp_name and wzp_name not in inits):
            continue
        casts = consumers.get(node.output[0], [])
        if len(casts) != 1 or casts[0].op_type != "Cast":
            continue
        muls = consumers.get(casts[0].output[0], [])
        if len(muls) != 1 or muls[0].op_type != "Mul":
            continue
        scale_mul = producer.get(next(i for i in muls[0].input if i != casts[0].output[0]))
        if scale_mul is None or scale_mul.op_type != "Mul" or dql.output[1] not in scale_mul.input:
            continue
        ws_name = next(i for i in scale_mul.input if i != dql.output[1])
        if ws_name not in inits:
            continue
        wq = numpy_helper.to_array(inits[wq_name])
        zp = numpy_helper.to_array(inits[wzp_name]) if wzp_name else None
        weight = _weight(wq, zp, numpy_helper.to_array(inits[ws_name]), conv=node.op_type == "ConvInteger")
        if weight is None:
            continue
        weight_name = f"{node.output[0]}/expanded_weight"
        new_inits.append(numpy_helper.from_array(weight, weight_name))
        replaced[id(node)] = onnx.helper.make_node(
            _PRODUCTS[node.op_type],
            [dql.input[0], weight_name],
            [muls[0].output[0]],
            name=f"{node.name}/Expanded",
        )
        replaced[id(node)].attribute.extend(node.attribute)
        removed.update({id(casts[0]), id(muls[0])})

    nodes = [replaced.get(id(n), n) for n in graph.node if id(n) not in removed]
    nodes = _without_dead(nodes, {o.name for o in graph.output}, {"DynamicQuantizeLinear", "Mul"})
    del graph.node[:]
    graph.node.extend(nodes)
    read = {i for n in nodes for i in n.input}
    kept = [t for t in graph.initializer if t.name in read or t.name in {i.name for i in graph.input}]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    left = sum(n.op_type == "DynamicQuantizeLinear" for n in nodes)
    return Expanded(model, len(replaced), left)


def _without_dead(nodes: list[onnx.NodeProto], outputs: set[str], op_types: set[str]) -> list[onnx.NodeProto]:
    """Drops nodes of `op_types` whose outputs nothing reads (repeatedly: a dead Mul may orphan a DQL)."""
    while True:
        read = outputs | {i for n in nodes for i in n.input}
        alive = [n for n in nodes if n.op_type not in op_types or any(o in read for o in n.output)]
        if len(alive) == len(nodes):
            return alive
        nodes = alive


def expand_file(src: Path, dst: Path) -> Expanded:
    """Reads `src`, writes the expanded model to `dst` (fp32 weights: about 4x the int8 file)."""
    expanded = expand_int8_weights(onnx.load(str(src)))
    onnx.save(expanded.model, str(dst))
    return expanded
