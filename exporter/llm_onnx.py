"""Decoder-with-KV-cache ONNX export, and GGUF blocks carried into it.

The fp32 graph comes from optimum's `text-generation-with-past` export (inputs input_ids,
attention_mask, position_ids, past_key_values.N.key/value; outputs logits, present.N.key/value).
Its linear layers are MatMul nodes named after their module ("/model/layers.0/mlp/up_proj/MatMul")
with the weight transposed as an initializer B [K, N]; carrying blocks over swaps those nodes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from transformers import PreTrainedModel

from exporter.errors import CarriedBlocksError
from exporter.gguf.blocks import BlockWeight, matmul_parts, pack_nibbles, pack_zero_points

MS_DOMAIN = "com.microsoft"
# fp32 activations: with uint8 zero points, level 4 would quantize activations to int8 natively (not in WASM).
ACCURACY_LEVEL = 0


def export_decoder(model: PreTrainedModel, folder: Path) -> Path:
    """fp32 decoder with KV cache -> folder/model.onnx (+ .onnx_data if large). Unties lm_head in place.

    The tied embedding/lm_head is exported as a runtime transpose that quantizers skip, so lm_head
    gets its own copy of the weight first (same values: PyTorch outputs do not change).
    """
    from optimum.exporters.onnx import onnx_export_from_model

    if model.lm_head.weight is model.get_input_embeddings().weight:
        model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
        model.config.tie_word_embeddings = False
    onnx_export_from_model(model, folder, task="text-generation-with-past", do_validation=False)
    return folder / "model.onnx"


def module_of(node: onnx.NodeProto) -> str:
    """'/model/layers.0/mlp/up_proj/MatMul' -> 'model.layers.0.mlp.up_proj' (the torch module path)."""
    return node.name.strip("/").rsplit("/", 1)[0].replace("/", ".")


class _Rewriter:
    """Collects replacement nodes and initializers for one graph."""

    def __init__(self, model: onnx.ModelProto, verify: bool) -> None:
        self.model = model
        self.verify = verify
        self.inits = {i.name: i for i in model.graph.initializer}
        self.new_inits: list[TensorProto] = []
        self.dropped: set[str] = set()
        self.parts: dict[str, list[tuple[str, str, BlockWeight]]] = {}  # module -> (B, scales, part) per part
        self._block_sums: dict[tuple[str, int], str] = {}

    def const(self, name: str, array: np.ndarray) -> str:
        self.new_inits.append(numpy_helper.from_array(array, name))
        return name

    def check(self, node: onnx.NodeProto, index: int, expected: np.ndarray | None) -> None:
        """Drops the replaced fp32 initializer; when verifying, it must equal the blocks' dequantized values."""
        weight = numpy_helper.to_array(self.inits[node.input[index]])
        if self.verify and (expected is None or not np.array_equal(weight, expected)):
            raise CarriedBlocksError(
                f"{node.name}: the GGUF blocks do not dequantize to the exported weight",
                fix="report this GGUF: its tensors and the model loaded from it disagree (or re-download the file)",
            )
        self.dropped.add(node.input[index])

    def store_parts(self, module: str, weight: BlockWeight) -> list[tuple[str, str, BlockWeight]]:
        """MatMulNBits initializers (packed codes [N, kb, B/2], scales [N, kb]) of each 4-bit part, stored once."""
        if module not in self.parts:
            self.parts[module] = [
                (
                    self.const(f"{module}.part{i}.qweight", pack_nibbles(part)),
                    self.const(f"{module}.part{i}.scales", part.scales),
                    part,
                )
                for i, part in enumerate(matmul_parts(weight))
            ]
        return self.parts[module]

    def block_sums(self, x: str, k: int, block: int, nodes: list[onnx.NodeProto]) -> str:
        """x [B, S, K] -> [B, S, K/block]: per-block sums, computed once per activation and block size."""
        if (x, block) not in self._block_sums:
            t = f"{x}/b{block}"
            shape = self.const(f"{t}/block_shape", np.array([0, 0, k // block, block], np.int64))
            axes = self.const(f"{t}/block_axes", np.array([-1], np.int64))
            nodes.append(helper.make_node("Reshape", [x, shape], [f"{t}/blocks"], name=f"{t}/Blocks"))
            nodes.append(
                helper.make_node(
                    "ReduceSum", [f"{t}/blocks", axes], [f"{t}/block_sums"], keepdims=0, name=f"{t}/BlockSums"
                )
            )
            self._block_sums[(x, block)] = f"{t}/block_sums"
        return self._block_sums[(x, block)]

    def carry_linear(self, node: onnx.NodeProto, weight: BlockWeight) -> list[onnx.NodeProto]:
        """MatMul(x, W^T) -> sum of 4-bit MatMulNBits parts [+ MatMul(block sums of x, m^T) for minimums].

        Integer zero points keep the fast native kernel and stay exact: with w = d*q + m,
        x . w = sum_b d_b (x_b . q_b) + m_b * sum(x_b).
        """
        self.check(node, 1, weight.dequantize().T if self.verify else None)
        module, x, out = module_of(node), node.input[0], node.output[0]
        n, k = weight.shape
        nodes: list[onnx.NodeProto] = []
        terms: list[str] = []
        for i, (b, scales, part) in enumerate(self.store_parts(module, weight)):
            zp = self.const(f"{module}.part{i}.qzeros", pack_zero_points(part))
            terms.append(f"{out}/part{i}")
            nodes.append(
                helper.make_node(
                    "MatMulNBits",
                    [x, b, scales, zp],
                    [terms[-1]],
                    domain=MS_DOMAIN,
                    name=f"{node.name}NBits{i}",
                    K=k,
                    N=n,
                    bits=4,
                    block_size=part.block_size,
                    accuracy_level=ACCURACY_LEVEL,
                )
            )
        if weight.mins is not None:
            mins = self.const(f"{module}.block_mins", np.ascontiguousarray(weight.mins.T))  # [k_blocks, N]
            terms.append(f"{out}/mins")
            nodes.append(
                helper.make_node(
                    "MatMul",
                    [self.block_sums(x, k, weight.block_size, nodes), mins],
                    [terms[-1]],
                    name=f"{node.name}Mins",
                )
            )
        if len(terms) == 1:
            nodes[-1].output[0] = out
        else:
            nodes.append(helper.make_node("Sum", terms, [out], name=f"{node.name}Sum"))
        return nodes

    def carry_embedding(self, node: onnx.NodeProto, weight: BlockWeight, shared: str | None) -> list[onnx.NodeProto]:
        """Gather(table, ids) -> per token: gather the packed 4-bit parts and scales, unpack, (code - zp) * d.

        Reuses lm_head's MatMulNBits initializers when they hold the same blocks (tied weights), so the
        table is stored once. Only float arithmetic on gathered rows (Cast, Div, Floor): ops every
        onnxruntime(-web) execution provider has, all exact on these small integers.
        """
        self.check(node, 0, weight.dequantize() if self.verify else None)
        p, ids, out = node.name, node.input[1], node.output[0]
        parts = self.store_parts(shared or "model.embed_tokens", weight)
        k, block = weight.shape[1], parts[0][2].block_size  # parts may be wider than the weight's blocks
        assert weight.mins is None or block == weight.block_size, "minimums come per weight block"
        kb = k // block
        c = {
            name: self.const(f"{p}/{name}", value)
            for name, value in (
                ("sixteen", np.array(16, np.float32)),
                ("last", np.array([-1], np.int64)),
                ("blocks", np.array([0, 0, kb, block], np.int64)),
                ("flat", np.array([0, 0, k], np.int64)),
            )
        }
        nodes: list[onnx.NodeProto] = []
        terms: list[str] = []
        for i, (b, scales, part) in enumerate(parts):
            t = f"{p}/part{i}"
            zp = self.const(f"{t}/zero_point", np.array(part.zero_point, np.float32))
            nodes += [
                helper.make_node("Gather", [b, ids], [f"{t}/packed"]),  # [B, S, kb, block/2] uint8
                helper.make_node("Cast", [f"{t}/packed"], [f"{t}/bytes"], to=TensorProto.FLOAT),
                helper.make_node("Div", [f"{t}/bytes", c["sixteen"]], [f"{t}/hi_frac"]),
                helper.make_node("Floor", [f"{t}/hi_frac"], [f"{t}/hi"]),  # code 2j+1
                helper.make_node("Mul", [f"{t}/hi", c["sixteen"]], [f"{t}/hi16"]),
                helper.make_node("Sub", [f"{t}/bytes", f"{t}/hi16"], [f"{t}/lo"]),  # code 2j
                helper.make_node("Unsqueeze", [f"{t}/lo", c["last"]], [f"{t}/lo1"]),
                helper.make_node("Unsqueeze", [f"{t}/hi", c["last"]], [f"{t}/hi1"]),
                helper.make_node("Concat", [f"{t}/lo1", f"{t}/hi1"], [f"{t}/pairs"], axis=-1),  # [B, S, kb, block/2, 2]
                helper.make_node("Reshape", [f"{t}/pairs", c["blocks"]], [f"{t}/codes"]),  # [B, S, kb, block]
                helper.make_node("Sub", [f"{t}/codes", zp], [f"{t}/q"]),
                helper.make_node("Gather", [scales, ids], [f"{t}/d"]),  # [B, S, kb]
                helper.make_node("Unsqueeze", [f"{t}/d", c["last"]], [f"{t}/d1"]),
                helper.make_node("Mul", [f"{t}/q", f"{t}/d1"], [f"{t}/w"]),
            ]
            terms.append(f"{t}/w")
        if weight.mins is not None:
            mins = self.const(f"{p}/mins", weight.mins)  # [V, kb]
            nodes += [
                helper.make_node("Gather", [mins, ids], [f"{p}/m"]),
                helper.make_node("Unsqueeze", [f"{p}/m", c["last"]], [f"{p}/m1"]),
            ]
            terms.append(f"{p}/m1")
        if len(terms) > 1:
            nodes.append(helper.make_node("Sum", terms, [f"{p}/sum"]))
        nodes.append(helper.make_node("Reshape", [nodes[-1].output[0], c["flat"]], [out]))  # [B, S, K]
        for j, made in enumerate(nodes):
            made.name = made.name or f"{p}/Carried_{j}"
        return nodes

    def finish(self, nodes: list[onnx.NodeProto]) -> onnx.ModelProto:
        graph = self.model.graph
        kept = [i for i in graph.initializer if i.name not in self.dropped]
        del graph.node[:]
        graph.node.extend(nodes)
        del graph.initializer[:]
        graph.initializer.extend(kept + self.new_inits)
        if not any(o.domain == MS_DOMAIN for o in self.model.opset_import):
            self.model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
        return self.model


def carry_blocks(
    model: onnx.ModelProto, linears: dict[str, BlockWeight], embedding: BlockWeight | None, verify: bool = True
) -> onnx.ModelProto:
    """Swaps the fp32 MatMuls named in `linears` (module path -> blocks) and the embedding Gather for
    block-quantized ops holding the very same codes, scales and minimums. Modifies `model` in place.
    Pass the embedding's own BlockWeight as linears["lm_head"] for tied weights: it is stored once.

    verify: raise CarriedBlocksError unless every block set dequantizes exactly (bit for bit) to the weight it
    replaces (blocks carried from the GGUF the weights were loaded from); False for re-quantized blocks.
    """
    rw = _Rewriter(model, verify)
    shared = "lm_head" if embedding is not None and linears.get("lm_head") is embedding else None  # tied
    nodes: list[onnx.NodeProto] = []
    done: set[str] = set()
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in rw.inits and module_of(node) in linears:
            nodes += rw.carry_linear(node, linears[module_of(node)])
            done.add(module_of(node))
        elif (
            embedding is not None
            and node.op_type == "Gather"
            and node.input[0] in rw.inits
            and module_of(node) == "model.embed_tokens"
        ):
            nodes += rw.carry_embedding(node, embedding, shared)
            done.add("model.embed_tokens")
        else:
            nodes.append(node)
    missing = set(linears) - done | ({"model.embed_tokens"} - done if embedding is not None else set())
    if missing:
        raise CarriedBlocksError(
            f"no MatMul/Gather found in the exported graph for {sorted(missing)}",
            fix="export an fp32 variant only (--variants fp32): this architecture's graph names differ from Llama's",
        )
    return rw.finish(nodes)
