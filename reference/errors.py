"""Named errors of the reference tools: ExportError subclasses, so each carries a fix and exits 2."""

from __future__ import annotations

from exporter.errors import ExportError


class DescriptionsFileError(ExportError):
    """A descriptions JSON that is not in FuDD's pairwise format, or names classes the data does not have."""


class DataFolderError(ExportError):
    """An evaluation folder without one subfolder of images per class."""


class SpeechClipError(ExportError):
    """Test audio that cannot be made or read (espeak-ng/sox missing, a WAV in the wrong format)."""
