"""Named export failures. Each carries the fix, so the CLI prints one clear line and exits 2."""

from __future__ import annotations

from contract.errors import LumenError


class ExportError(LumenError):
    """Base class of the exporter's errors: `str(err)` says what went wrong, `err.fix` what to do about it."""


class SourceNotFoundError(ExportError):
    """A local path that does not exist, or a name that is neither a folder nor a known source."""


class HubUnreachableError(ExportError):
    """A hub id was given, but the hub cannot be reached (offline) and nothing is cached."""


class CorruptCheckpointError(ExportError):
    """Files exist but cannot be read as a model (bad JSON, truncated weights, bad GGUF)."""


class TokenizerMissingError(CorruptCheckpointError):
    """The weights load, but the tokenizer files beside them are missing or unreadable."""


class UnsupportedArchitectureError(ExportError):
    """The checkpoint's architecture is not one this exporter knows."""


class UnsupportedQuantizationError(ExportError):
    """A GGUF tensor type or a requested variant that the exporter cannot carry over."""


class ParityError(ExportError):
    """An exported file disagrees with its PyTorch reference beyond the stated tolerance."""


class CarriedBlocksError(ExportError):
    """GGUF blocks that cannot be carried into the exported graph: they do not dequantize to the
    weight they replace, or the graph has no MatMul/Gather for them."""


class DiskFullError(ExportError):
    """The artifact folder ran out of space; nothing was committed."""


class ArtifactStoreError(ExportError):
    """The artifact folder is locked by another export, or its manifest is invalid."""


class OutputNotWritableError(ExportError):
    """--out cannot be written (read-only file system, permissions): found before any work is done."""


class FidelityTargetsError(ParityError):
    """No exported variant of a trained model meets the fidelity targets: none may be a default."""


def load_failure(what: str, folder: object, err: Exception) -> CorruptCheckpointError:
    """A from_pretrained failure, named: a config/weights size mismatch says so, anything else is corrupt files."""
    text = f"{type(err).__name__}: {err}"
    if "size mismatch" in text or "ignore_mismatched_sizes" in text:
        first = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line), text[:300])
        return CorruptCheckpointError(
            f"config.json in {folder} does not match its {what} weights ({first})",
            fix="use the config.json saved with these weights (save_pretrained writes both), or re-download the checkpoint",
        )
    return CorruptCheckpointError(
        f"cannot load the {what} weights in {folder}: {text[:500]}",
        fix="re-download or re-save the checkpoint (save_pretrained); a truncated or corrupt .safetensors file "
        "cannot be repaired",
    )


class SpeechClipError(ExportError):
    """Test audio that cannot be made or read (espeak-ng/sox missing, a WAV in the wrong format)."""
