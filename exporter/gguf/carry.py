"""Which GGUF tensors of which architecture become which torch module, in Hugging Face row order."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from exporter.gguf.blocks import BlockWeight
from exporter.gguf.quants import BLOCK_TYPES
from exporter.gguf.reader import GgufFile

# GGUF architectures (general.architecture) the exporter carries; all share these linear names.
ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3")
# GGUF tensor (per block) -> torch module of the HF model (Llama, Qwen2/3 and Gemma 3 name them alike)
_LINEARS = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def rope_unpermute_order(n_rows: int, n_head: int) -> np.ndarray:
    """Row order that undoes llama.cpp's attn_q/attn_k permutation (its RoPE pairs rows, HF halves them).

    llama.cpp's converter did w.reshape(n_head, 2, d, K).swapaxes(1, 2); the inverse applied to row indices.
    """
    d = n_rows // n_head // 2
    return np.arange(n_rows).reshape(n_head, d, 2).swapaxes(1, 2).reshape(n_rows)


@dataclass
class CarriedWeights:
    linears: dict[str, BlockWeight]  # torch module path -> blocks in HF row order
    embedding: BlockWeight | None
    floats: dict[str, str] = field(default_factory=dict)  # GGUF tensor -> float type, kept as the fp32 export

    def types(self) -> list[str]:
        return sorted({w.ggml_type for w in self.linears.values()} | set(self.floats.values()))


def carried_weights(gguf: GgufFile, num_layers: int, num_heads: int, num_kv_heads: int) -> CarriedWeights:
    """Every block-quantized weight of the GGUF, rows reordered to HF order (never re-quantized).

    llama.cpp permutes only Llama's attn_q/attn_k rows for its RoPE layout. A tied lm_head (no
    output.weight) is the embedding's own BlockWeight. Float weights stay as the fp32 export has them.
    Raises UnsupportedQuantizationError for a tensor type that is neither a carried block type nor float.
    """
    gguf.check_types()
    carried = CarriedWeights({}, None)
    rope_heads = {"attn_q": num_heads, "attn_k": num_kv_heads} if gguf.architecture == "llama" else {}

    def take(name: str) -> BlockWeight | None:
        if not gguf.has(name):
            return None
        if gguf.tensor_type(name) not in BLOCK_TYPES:
            carried.floats[name] = gguf.tensor_type(name)
            return None
        return gguf.blocks(name)

    for layer in range(num_layers):
        for short, module in _LINEARS.items():
            weight = take(f"blk.{layer}.{short}.weight")
            if weight is not None and short in rope_heads:
                weight = weight.take_rows(rope_unpermute_order(weight.shape[0], rope_heads[short]))
            if weight is not None:
                carried.linears[f"model.layers.{layer}.{module}"] = weight
    carried.embedding = take("token_embd.weight")
    lm_head = take("output.weight") if gguf.has("output.weight") else carried.embedding
    if lm_head is not None:
        carried.linears["lm_head"] = lm_head
    return carried
