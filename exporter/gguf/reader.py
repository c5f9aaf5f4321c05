"""GgufFile: the tensors and metadata of a .gguf file; every read failure is a CorruptCheckpointError."""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import numpy as np

from exporter.errors import CorruptCheckpointError
from exporter.gguf.blocks import BlockWeight
from exporter.gguf.quants import BLOCK_TYPES, FLOAT_TYPES, unpack_blocks, unsupported_type


class GgufFile:
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

    def integer(self, key: str) -> int | None:
        """An integer field (GGUF integers come back as numpy scalars); None when missing or not an integer."""
        value = self.field(key)
        return int(value) if isinstance(value, numbers.Integral) else None

    def values(self, key: str) -> list[Any]:
        """An array field; CorruptCheckpointError when it is missing or not an array."""
        value = self.field(key)
        if not isinstance(value, list):
            raise CorruptCheckpointError(
                f"{self.path}: metadata {key} is missing or not an array", fix="re-download the .gguf file"
            )
        return value

    @property
    def architecture(self) -> str:
        return str(self.field("general.architecture", "unknown"))

    def tensors(self) -> list:
        """The reader's tensors (name, tensor_type, shape innermost first, data)."""
        return list(self._reader.tensors)

    @property
    def tensor_names(self) -> list[str]:
        return list(self._tensors)

    def tensor_type(self, name: str) -> str:
        return self._tensors[name].tensor_type.name

    def has(self, name: str) -> bool:
        return name in self._tensors

    def check_types(self) -> None:
        """UnsupportedQuantizationError naming the first tensor of a type that cannot be carried exactly."""
        for name, tensor in self._tensors.items():
            kind = tensor.tensor_type.name
            if kind not in BLOCK_TYPES and kind not in FLOAT_TYPES:
                raise unsupported_type(kind, name)

    def blocks(self, name: str) -> BlockWeight:
        """A 2-D block-quantized weight; GGUF lists shapes innermost first, so ne = [K, N]."""
        tensor = self._tensors[name]
        k, n = (int(x) for x in tensor.shape)
        return unpack_blocks(np.asarray(tensor.data), tensor.tensor_type.name, (n, k), tensor=name)

    def float_values(self, name: str) -> np.ndarray:
        """A float tensor (F32/F16/BF16) as float32, in GGUF's row-major order (exact: widening only)."""
        tensor = self._tensors[name]
        raw = np.ascontiguousarray(tensor.data)
        kind = tensor.tensor_type.name
        if kind == "BF16":
            values = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif kind in ("F16", "F32"):
            values = raw.view(np.float16 if kind == "F16" else np.float32).astype(np.float32)
        else:
            raise unsupported_type(kind, name)
        return values.reshape([int(x) for x in reversed(tensor.shape)])
