"""onnxruntime's graph optimizer run once at export time, so browsers do not run it at every load.

A torch.onnx decoder is a raw graph (SmolLM2-135M: 8,116 nodes, a third of them Constant, plus
Shape/Gather/Unsqueeze/Concat chains). onnxruntime rewrites it at every session creation: constant
folding, shape-chain elimination, RMSNorm / SiLU / attention-matmul fusions. In native onnxruntime
that pass was most of session creation on that file (about 14 s -> 2 s, one run on a loaded
machine); saved once, a session starts from the ~3.8k-node result and its own pass finds little left
to do. (In onnxruntime-web, the fp32-expanded weights dominate session creation: see README.)

Level EXTENDED, not ALL: ALL adds layout transforms for the exporting machine's CPU (onnxruntime
warns the result is hardware-specific); EXTENDED's fusions are plain contrib ops every onnxruntime
build (WASM included) runs. Weights are untouched (MatMulNBits blocks, the Q4_1 minimum term and
its Sum stay as they are); the fidelity gates run on the optimized file.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx


def node_count(path: Path) -> int:
    return len(onnx.load(path, load_external_data=False).graph.node)


def optimize_offline(path: Path) -> dict[str, int | str]:
    """Rewrites the .onnx at path with onnxruntime's EXTENDED optimizations (atomically: a temporary
    file in the same folder, then a rename). Returns node counts before and after for the report."""
    import onnxruntime as ort

    if any(p != path for p in path.parent.glob(path.name + "*")):  # external data: kept as exported
        return {"skipped": "external-data files are not re-optimized"}
    before = node_count(path)
    tmp = path.with_name(f".{path.name}.optimized")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp)
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # the optimizer's notes are not errors
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        model = onnx.load(tmp)
        _keep_used_opsets(model)
        onnx.save(model, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return {"nodes_before": before, "nodes_after": len(model.graph.node)}


def _keep_used_opsets(model: onnx.ModelProto) -> None:
    """onnxruntime's saved model imports every domain it knows (training, nchwc, aten...); an older
    onnxruntime-web need not know them all, so only the domains nodes use stay."""
    used = {node.domain for node in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
