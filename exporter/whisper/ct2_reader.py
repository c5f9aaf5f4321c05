"""Reads a CTranslate2 `model.bin` into numpy arrays (no ctranslate2 import).

Layout (binary version 6, little-endian, as ctranslate2's ModelSpec writes it):
    u32 version · str spec_name · u32 spec_revision · u32 n_variables
    n_variables x [str name · u8 rank · u32 dims[rank] · u8 dtype_id · u32 n_bytes · bytes]
    u32 n_aliases · n_aliases x [str alias · str target]
where `str` is u16 length (including a trailing NUL) + UTF-8 bytes + NUL. Versions 1-5 differ
(no aliases before 3, no revision before 2, no dtype byte before 4): only 5 and 6 are accepted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exporter.errors import CorruptCheckpointError

SUPPORTED_VERSIONS = (5, 6)
# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # None: bfloat16, read below


@dataclass
class Ct2Model:
    spec: str  # e.g. "WhisperSpec"
    revision: int
    variables: dict[str, np.ndarray]  # name -> array; int8 weights come with a "<name>_scale" variable
    aliases: dict[str, str]  # alias -> variable name

    def get(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]


class _Cursor:
    def __init__(self, data: memoryview, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise CorruptCheckpointError(
                f"{self.path} ends early (wanted {n} bytes at offset {self.pos} of {len(self.data)})",
                fix="the file is truncated: reinstall the package or re-run the CTranslate2 converter",
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def string(self) -> str:
        raw = bytes(self.take(self.u16()))
        return raw.rstrip(b"\0").decode("utf-8")


def read_ct2(path: Path) -> Ct2Model:
    """model.bin -> Ct2Model; bfloat16 variables come back as float32 (numpy has no bfloat16)."""
    path = Path(path)
    try:
        data = memoryview(path.read_bytes())
    except OSError as err:
        raise CorruptCheckpointError(f"cannot read {path}: {err}", fix="check the path and permissions") from err
    cur = _Cursor(data, path)
    version = cur.u32()
    if version not in SUPPORTED_VERSIONS:
        raise CorruptCheckpointError(
            f"{path} is CTranslate2 binary version {version}; this reader knows versions {SUPPORTED_VERSIONS}",
            fix="re-convert the model with ctranslate2 >= 3 (ct2-transformers-converter)",
        )
    spec, revision = cur.string(), cur.u32()
    variables: dict[str, np.ndarray] = {}
    for _ in range(cur.u32()):
        name = cur.string()
        shape = tuple(cur.u32() for _ in range(cur.u8()))
        type_id, n_bytes = cur.u8(), cur.u32()
        raw = cur.take(n_bytes)
        variables[name] = _array(raw, type_id, shape, name, path)
    aliases = {}
    for _ in range(cur.u32()):
        alias = cur.string()
        aliases[alias] = cur.string()
    if cur.pos != len(data):
        raise CorruptCheckpointError(
            f"{path} has {len(data) - cur.pos} unexpected bytes after the last record",
            fix="the file is damaged: reinstall the package or re-run the CTranslate2 converter",
        )
    return Ct2Model(spec, revision, variables, aliases)


def _array(raw: memoryview, type_id: int, shape: tuple[int, ...], name: str, path: Path) -> np.ndarray:
    if type_id >= len(_DTYPES):
        raise CorruptCheckpointError(f"{path}: variable {name} has unknown dtype id {type_id}", fix="re-convert")
    dtype = _DTYPES[type_id]
    if dtype is None:  # bfloat16: the high half of a float32
        halves = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        values = halves.view(np.float32)
    else:
        values = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
    if values.size != int(np.prod(shape, dtype=np.int64)):
        raise CorruptCheckpointError(
            f"{path}: variable {name} holds {values.size} values for shape {shape}", fix="re-convert the model"
        )
    return values.reshape(shape)
