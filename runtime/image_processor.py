"""The image processor an export wrote (preprocessor_config.json), as Hugging Face runs it.

The references and the exporter's parity checks feed the towers through the shipped file, never
through the checkpoint's own processor: what the browser reimplements is this file.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoImageProcessor
from transformers.image_processing_utils import BaseImageProcessor


def load_written_processor(folder: Path) -> BaseImageProcessor:
    """The slow (PIL) processor from the file we wrote: parity inputs go through the shipped config."""
    return AutoImageProcessor.from_pretrained(folder, use_fast=False)
