"""Named errors of the reference tools: each carries a fix, and the command lines exit 2 on them."""

from __future__ import annotations

from contract.errors import LumenError


class ReferenceToolError(LumenError):
    """Base of the references' errors."""


class ArtifactsError(ReferenceToolError):
    """The artifact folder lacks the model, variant or file a reference was asked to run."""


class DescriptionsFileError(ReferenceToolError):
    """A descriptions JSON that is not in FuDD's pairwise format, or names classes the data does not have."""


class DataFolderError(ReferenceToolError):
    """An evaluation folder without one subfolder of images per class."""


class FewShotError(ReferenceToolError):
    """Few-shot examples or labels that cannot make a classifier (no examples, unknown label, wrong size)."""
