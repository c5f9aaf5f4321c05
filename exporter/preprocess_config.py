"""preprocessor_config.json: the family's real Hugging Face image processor, at the model's image size.

The browser reimplements exactly this file, and tests compare its pixels with what the slow
(PIL) HF processor makes of the same image, so only real processor classes and settings go here.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from PIL import Image
from transformers import AutoImageProcessor, CLIPImageProcessor, EfficientNetImageProcessor, SiglipImageProcessor
from transformers.image_processing_utils import BaseImageProcessor

from exporter.errors import CorruptCheckpointError

PREPROCESSOR_FILE = "preprocessor_config.json"
# kakaobrain/align-base resizes to 346 and center-crops 289; tiny models keep that ratio.
_ALIGN_RESIZE_OVER_CROP = 346 / 289


def family_processor(family: str, image_size: int) -> BaseImageProcessor:
    """What the family's published checkpoints use, scaled to `image_size`."""
    if family == "clip":  # shortest edge -> image_size (bicubic), center crop, OpenAI CLIP mean/std
        return CLIPImageProcessor(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        )
    if family == "siglip":  # square resize (bicubic, as google/siglip-* ship it), mean/std 0.5
        return SiglipImageProcessor(size={"height": image_size, "width": image_size})
    if family == "align":  # settings of HF's ALIGN conversion: bilinear resize, crop, rescale to [-1, 1]
        resize = round(image_size * _ALIGN_RESIZE_OVER_CROP)
        return EfficientNetImageProcessor(
            size={"height": resize, "width": resize},
            crop_size={"height": image_size, "width": image_size},
            do_center_crop=True,
            rescale_factor=1 / 127.5,
            rescale_offset=True,
            do_normalize=False,
            include_top=False,
            resample=Image.Resampling.BILINEAR,
        )
    raise ValueError(f"unknown family {family!r}")


def checkpoint_processor(folder: Path) -> BaseImageProcessor:
    try:
        return AutoImageProcessor.from_pretrained(folder, use_fast=False)
    except (OSError, ValueError) as err:
        raise CorruptCheckpointError(
            f"cannot load the image processor of {folder}: {err}",
            fix="re-save the checkpoint with its processor (processor.save_pretrained)",
        ) from err


def write_preprocessor(processor: BaseImageProcessor, dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        processor.save_pretrained(tmp)
        shutil.copyfile(Path(tmp) / PREPROCESSOR_FILE, dest / PREPROCESSOR_FILE)
