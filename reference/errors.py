"""Named errors of the reference tools: ExportError subclasses, so each carries a fix and exits 2."""

from __future__ import annotations

from exporter.errors import ExportError


class DescriptionsFileError(ExportError):
    """A descriptions JSON that is not in FuDD's pairwise format, or names classes the data does not have."""


class DataFolderError(ExportError):
    """An evaluation folder without one subfolder of images per class."""


class FewShotError(ExportError):
    """Few-shot examples or labels that cannot make a classifier (no examples, unknown label, wrong size)."""
