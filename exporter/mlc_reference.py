"""An independent reader and numpy forward pass for an MLC/WebLLM Llama folder.

It shares no code with the writer (exporter/mlc.py): it knows only the published formats, i.e.
tensor-cache.json (tvmjs: shards of raw little-endian tensors, md5 per shard), mlc-chat-config.json
(model_config of mlc-llm's Llama), and group quantization as the compiled library decodes it:
value = (((word >> 4*(k % 8)) & 0xF) - 7) * scale[k // 32], computed in the scale's dtype.
The forward pass (RMSNorm, RoPE with the config's base, grouped-query attention, SiLU MLP, tied or
separate lm_head) runs in float64, so what differs from PyTorch is the stored weights alone.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from exporter.errors import CorruptCheckpointError

_FIX = "export the MLC folder again"
_DTYPES = {"float32": np.float32, "float16": np.float16, "uint32": np.uint32, "int32": np.int32}


def read_tensor_cache(folder: Path, check_md5: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """name -> array for every record of tensor-cache.json, checked against the shard bytes."""
    cache_path = folder / "tensor-cache.json"
    try:
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CorruptCheckpointError(f"{cache_path} is not readable: {err}", fix=_FIX) from err
    arrays: dict[str, np.ndarray] = {}
    for shard in cache["records"]:
        data = _read_shard(folder, shard, check_md5)
        end = 0
        for rec in sorted(shard["records"], key=lambda r: r["byteOffset"]):
            name, offset, nbytes = rec["name"], rec["byteOffset"], rec["nbytes"]
            dtype = _DTYPES.get(rec["dtype"])
            if dtype is None or rec["format"] != "raw":
                raise CorruptCheckpointError(
                    f"{name}: dtype {rec['dtype']} / format {rec['format']} not readable", fix=_FIX
                )
            if (
                offset < end
                or offset + nbytes > len(data)
                or nbytes != math.prod(rec["shape"]) * np.dtype(dtype).itemsize
            ):
                raise CorruptCheckpointError(
                    f"{name}: record [{offset}, +{nbytes}) does not fit {shard['dataPath']}", fix=_FIX
                )
            if name in arrays:
                raise CorruptCheckpointError(f"{name} is recorded twice", fix=_FIX)
            arrays[name] = np.frombuffer(
                data, dtype=np.dtype(dtype).newbyteorder("<"), count=math.prod(rec["shape"]), offset=offset
            ).reshape(rec["shape"])
            end = offset + nbytes
    return arrays, cache.get("metadata", {})


def _read_shard(folder: Path, shard: dict[str, Any], check_md5: bool) -> bytes:
    path = folder / shard["dataPath"]
    if shard.get("format") != "raw-shard" or Path(shard["dataPath"]).name != shard["dataPath"]:
        raise CorruptCheckpointError(f"shard record {shard['dataPath']!r} is not a raw shard in this folder", fix=_FIX)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CorruptCheckpointError(f"{path} is missing or unreadable: {err}", fix=_FIX) from err
    if len(data) != shard["nbytes"]:
        raise CorruptCheckpointError(
            f"{path} has {len(data)} bytes, tensor-cache.json says {shard['nbytes']}", fix=_FIX
        )
    if check_md5 and hashlib.md5(data).hexdigest() != shard["md5sum"]:
        raise CorruptCheckpointError(f"{path} does not match its md5sum in tensor-cache.json", fix=_FIX)
    return data


def decode_group_quant(q_weight: np.ndarray, q_scale: np.ndarray) -> np.ndarray:
    """uint32 [rows, cols/8] + scale [rows, cols/32] -> dequantized [rows, cols] in the scale's dtype."""
    rows, words = q_weight.shape
    cols = words * 8
    shifts = (4 * np.arange(8)).astype(np.uint32)  # position k sits in word k // 8 at bits 4*(k % 8)
    codes = ((q_weight[:, :, None] >> shifts) & np.uint32(0xF)).reshape(rows, cols)  # [rows, cols]
    group = cols // q_scale.shape[1]
    scale = np.repeat(q_scale, group, axis=1)  # [rows, cols]
    return (codes.astype(q_scale.dtype) - q_scale.dtype.type(7)) * scale


class MlcReference:
    """The model as the folder stores it; `logits(ids)` is the full-sequence forward in float64."""

    def __init__(self, folder: Path) -> None:
        folder = Path(folder)
        self.chat_config = json.loads((folder / "mlc-chat-config.json").read_text(encoding="utf-8"))
        self.quantization = self.chat_config["quantization"]
        self.cfg = self.chat_config["model_config"]
        self.arrays, self.metadata = read_tensor_cache(folder)  # as stored, for inspection
        self.weights = dict(self._dequantized(self.arrays))  # name.weight -> float32

    @staticmethod
    def _dequantized(arrays: dict[str, np.ndarray]):
        for name, array in arrays.items():
            if name.endswith(".q_weight"):
                base = name.removesuffix(".q_weight")
                yield f"{base}.weight", decode_group_quant(array, arrays[f"{base}.q_scale"]).astype(np.float32)
            elif not name.endswith(".q_scale"):
                yield name, array.astype(np.float32)

    def _w(self, name: str) -> np.ndarray:
        return self.weights[name].astype(np.float64)

    def _rms_norm(self, x: np.ndarray, name: str) -> np.ndarray:
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.cfg["rms_norm_eps"]) * self._w(name)

    def _rope(self, x: np.ndarray) -> np.ndarray:
        """Rotate-half RoPE (mlc-llm RopeMode.NORMAL). x [heads, T, d]."""
        d = x.shape[-1]
        inv_freq = self.cfg["position_embedding_base"] ** (-np.arange(0, d, 2, dtype=np.float64) / d)  # [d/2]
        angles = np.arange(x.shape[1], dtype=np.float64)[:, None] * inv_freq[None, :]  # [T, d/2]
        cos, sin = np.cos(angles), np.sin(angles)
        first, second = x[..., : d // 2], x[..., d // 2 :]
        return np.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)

    def _attention(self, x: np.ndarray, prefix: str) -> np.ndarray:
        c = self.cfg
        heads, kv_heads, d = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        seq = x.shape[0]
        qkv = x @ self._w(f"{prefix}.qkv_proj.weight").T  # [T, (h + 2 kv) d]
        q = qkv[:, : heads * d].reshape(seq, heads, d).transpose(1, 0, 2)  # [h, T, d]
        k = qkv[:, heads * d : (heads + kv_heads) * d].reshape(seq, kv_heads, d).transpose(1, 0, 2)  # [kv, T, d]
        v = qkv[:, (heads + kv_heads) * d :].reshape(seq, kv_heads, d).transpose(1, 0, 2)  # [kv, T, d]
        q, k = self._rope(q), self._rope(k)
        group = heads // kv_heads  # query head i reads kv head i // group
        k, v = np.repeat(k, group, axis=0), np.repeat(v, group, axis=0)  # [h, T, d]
        # einsum, not batched matmul: many tiny BLAS calls stall when the CPU is oversubscribed
        scores = np.einsum("htd,hsd->hts", q, k) / math.sqrt(d)  # [h, T, T]
        scores = np.where(np.tril(np.ones((seq, seq), dtype=bool)), scores, -np.inf)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        out = np.einsum("hts,hsd->htd", scores / scores.sum(-1, keepdims=True), v)  # [h, T, d]
        return out.transpose(1, 0, 2).reshape(seq, heads * d) @ self._w(f"{prefix}.o_proj.weight").T

    def _mlp(self, x: np.ndarray, prefix: str) -> np.ndarray:
        gate, up = np.split(x @ self._w(f"{prefix}.gate_up_proj.weight").T, 2, axis=-1)  # [T, I] each
        return (gate / (1 + np.exp(-gate)) * up) @ self._w(f"{prefix}.down_proj.weight").T

    def logits(self, token_ids: list[int]) -> np.ndarray:
        """[T, vocab] float64 logits of every position, causal attention from position 0."""
        x = self.weights["model.embed_tokens.weight"][np.asarray(token_ids)].astype(np.float64)  # [T, H]
        for i in range(self.cfg["num_hidden_layers"]):
            p = f"model.layers.{i}"
            x = x + self._attention(self._rms_norm(x, f"{p}.input_layernorm.weight"), f"{p}.self_attn")
            x = x + self._mlp(self._rms_norm(x, f"{p}.post_attention_layernorm.weight"), f"{p}.mlp")
        x = self._rms_norm(x, "model.norm.weight")
        head = "model.embed_tokens.weight" if self.cfg["tie_word_embeddings"] else "lm_head.weight"
        return x @ self._w(head).T
