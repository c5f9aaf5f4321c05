"""GGUF quantized blocks, carried over unchanged into onnxruntime's MatMulNBits layout.

A ggml block holds 32 consecutive weights of one row (along the input axis K):
    Q4_0: d f16 | 16 bytes of nibbles          w = d * (q - 8)
    Q4_1: d f16 | m f16 | 16 bytes of nibbles  w = d * q + m
    Q8_0: d f16 | 32 int8                      w = d * q
Within a 4-bit block the low nibbles are elements 0..15 and the high nibbles 16..31; MatMulNBits
packs element 2j in the low and 2j+1 in the high nibble of byte j. Here every block is unpacked
to one uint8 code per weight, so repacking for MatMulNBits never re-quantizes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from exporter.errors import CorruptCheckpointError, UnsupportedQuantizationError

BLOCK = 32
# ggml type name -> (bytes per block, bits, integer zero point of the unsigned codes)
_LAYOUTS = {"Q4_0": (18, 4, 8), "Q4_1": (20, 4, 0), "Q8_0": (34, 8, 128)}
CARRIED_TYPES = tuple(_LAYOUTS)


@dataclass(frozen=True)
class BlockWeight:
    """A [N, K] weight as blocks along K: w[n, 32b + i] = scales[n, b] * (codes[n, b, i] - zero_point) + mins[n, b]."""

    codes: np.ndarray  # uint8 [N, k_blocks, 32], each < 2**bits
    scales: np.ndarray  # float32 [N, k_blocks]: ggml's d (an f16 value, so d * code is exact in float32)
    mins: np.ndarray | None  # float32 [N, k_blocks]: ggml's m (Q4_1), else None
    bits: int
    zero_point: int
    ggml_type: str

    @property
    def shape(self) -> tuple[int, int]:
        n, k_blocks, _ = self.codes.shape
        return n, k_blocks * BLOCK

    def dequantize(self) -> np.ndarray:
        """float32 [N, K], with ggml's own arithmetic (d * q, then + m), so it matches gguf-py bit for bit."""
        q = self.codes.astype(np.float32) - np.float32(self.zero_point)
        w = self.scales[..., None] * q
        if self.mins is not None:
            w = w + self.mins[..., None]
        return w.reshape(self.shape)

    def take_rows(self, order: np.ndarray) -> BlockWeight:
        """Rows reordered (row r of the result is row order[r]): blocks move whole, nothing is re-quantized."""
        return replace(
            self,
            codes=self.codes[order],
            scales=self.scales[order],
            mins=None if self.mins is None else self.mins[order],
        )


def unpack_blocks(raw: np.ndarray, ggml_type: str, shape: tuple[int, int]) -> BlockWeight:
    """ggml bytes of a [N, K] tensor (any shape holding N*K/32 blocks) -> BlockWeight."""
    if ggml_type not in _LAYOUTS:
        raise UnsupportedQuantizationError(
            f"GGUF tensor type {ggml_type} cannot be carried over exactly (carried: {', '.join(CARRIED_TYPES)})",
            fix="convert the GGUF with llama-quantize to Q4_1 or Q8_0, or pass an fp16/fp32 checkpoint folder",
        )
    block_bytes, bits, zero_point = _LAYOUTS[ggml_type]
    n, k = shape
    if k % BLOCK or raw.size != n * k // BLOCK * block_bytes:
        raise CorruptCheckpointError(
            f"a {ggml_type} tensor of shape {shape} needs {n * k // BLOCK * block_bytes} "
            f"bytes, the file holds {raw.size}",
            fix="re-download or re-convert the GGUF file",
        )
    blocks = np.ascontiguousarray(raw, dtype=np.uint8).reshape(n, k // BLOCK, block_bytes)
    scales = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    mins = None
    if ggml_type == "Q8_0":
        codes = (blocks[..., 2:].view(np.int8).astype(np.int16) + zero_point).astype(np.uint8)
    else:
        start = 4 if ggml_type == "Q4_1" else 2
        if ggml_type == "Q4_1":
            mins = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
        nibbles = blocks[..., start : start + BLOCK // 2]  # [N, kb, 16]
        codes = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1)  # low nibbles: 0..15, high: 16..31
    return BlockWeight(codes=codes, scales=scales, mins=mins, bits=bits, zero_point=zero_point, ggml_type=ggml_type)


def rope_unpermute_order(n_rows: int, n_head: int) -> np.ndarray:
    """Row order that undoes llama.cpp's attn_q/attn_k permutation (its RoPE pairs rows, HF halves them).

    llama.cpp's converter did w.reshape(n_head, 2, d, K).swapaxes(1, 2); the inverse applied to row indices.
    """
    d = n_rows // n_head // 2
    return np.arange(n_rows).reshape(n_head, d, 2).swapaxes(1, 2).reshape(n_rows)


def nibble_parts(weight: BlockWeight) -> list[BlockWeight]:
    """4-bit pieces whose products sum to d * (q - zero_point) (minimums left out), exactly.

    onnxruntime's fast native MatMulNBits kernels with fp32 activations are the 4-bit ones with
    integer zero points; its 8-bit kernel dequantizes the whole weight every call. So an 8-bit code
    u = 16 hi + lo becomes two 4-bit parts: (hi - zp_hi) * 16d + (lo - zp_lo) * d. Scaling d by 16
    is exact, and so is each product, so the parts add up to ggml's value bit for bit.
    """
    if weight.bits == 4:
        return [replace(weight, mins=None)]
    hi = replace(
        weight,
        codes=weight.codes >> 4,
        scales=weight.scales * np.float32(16),
        mins=None,
        bits=4,
        zero_point=weight.zero_point >> 4,
    )
    lo = replace(weight, codes=weight.codes & 0x0F, mins=None, bits=4, zero_point=weight.zero_point & 0x0F)
    return [hi, lo]


def pack_nibbles(part: BlockWeight) -> np.ndarray:
    """MatMulNBits input B of a 4-bit part: uint8 [N, k_blocks, 16], byte j = code 2j | code 2j+1 << 4."""
    assert part.bits == 4, "split 8-bit weights with nibble_parts() first"
    return part.codes[..., 0::2] | (part.codes[..., 1::2] << 4)


def pack_zero_points(part: BlockWeight) -> np.ndarray:
    """MatMulNBits zero points of a 4-bit part: uint8 [N, ceil(k_blocks / 2)], two a byte along k_blocks, low first."""
    n, k_blocks, _ = part.codes.shape
    zp = np.full((n, k_blocks + k_blocks % 2), part.zero_point, dtype=np.uint8)
    return zp[:, 0::2] | (zp[:, 1::2] << 4)


class GgufFile:
    """The tensors and metadata of a .gguf file; every read failure is a CorruptCheckpointError."""

    def __init__(self, path: Path) -> None:
        from gguf import GGUFReader

        self.path = path
        try:
            self._reader = GGUFReader(path)
        except Exception as err:  # truncated or garbage files fail anywhere inside the parser
            raise CorruptCheckpointError(
                f"{path} is not a readable GGUF file ({type(err).__name__}: {err})",
                fix="re-download the .gguf file (it may be truncated)",
            ) from err
        self._tensors = {t.name: t for t in self._reader.tensors}

    def field(self, key: str, default: object = None) -> object:
        field = self._reader.fields.get(key)
        return default if field is None else field.contents()

    @property
    def architecture(self) -> str:
        return str(self.field("general.architecture", "unknown"))

    def tensors(self) -> list:
        """The reader's tensors (name, tensor_type, shape innermost first, data)."""
        return list(self._reader.tensors)

    def tensor_type(self, name: str) -> str:
        return self._tensors[name].tensor_type.name

    def has(self, name: str) -> bool:
        return name in self._tensors

    def blocks(self, name: str) -> BlockWeight:
        """A 2-D weight's blocks; GGUF lists shapes innermost first, so ne = [K, N]."""
        tensor = self._tensors[name]
        k, n = (int(x) for x in tensor.shape)
        return unpack_blocks(np.asarray(tensor.data), tensor.tensor_type.name, (n, k))


# GGUF tensor (per block) -> torch module of the HF Llama / Qwen2 model
_LINEARS = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


@dataclass
class CarriedWeights:
    linears: dict[str, BlockWeight]  # torch module path -> blocks in HF row order
    embedding: BlockWeight | None
    skipped: dict[str, str]  # GGUF tensor -> its type, for types that cannot be carried (re-quantized instead)


def carried_weights(gguf: GgufFile, num_layers: int, num_heads: int, num_kv_heads: int) -> CarriedWeights:
    """Every block-quantized weight of a Llama/Qwen2 GGUF, rows reordered to HF order (never re-quantized).

    llama.cpp permutes Llama's attn_q/attn_k rows for its RoPE layout; Qwen2 GGUFs are not permuted.
    A tied lm_head (no output.weight) is the embedding's own BlockWeight.
    """
    carried = CarriedWeights({}, None, {})
    rope_heads = {"attn_q": num_heads, "attn_k": num_kv_heads} if gguf.architecture == "llama" else {}

    def take(name: str) -> BlockWeight | None:
        if not gguf.has(name):
            return None
        if gguf.tensor_type(name) not in CARRIED_TYPES:
            carried.skipped[name] = gguf.tensor_type(name)
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
