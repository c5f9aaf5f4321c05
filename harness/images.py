"""Fixed test images (non-square, so every one needs a resize and a crop) and their data: URLs."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def fixed_images(seed: int = 0) -> list[Image.Image]:
    """Fixed RGB images, all non-square: each needs a resize (down and up) and, for CLIP/ALIGN, a crop.

    Smooth gradients plus noise and hard edges, so resampling errors show up in the embeddings.
    """
    rng = np.random.default_rng(seed)
    images = []
    for width, height in [(97, 61), (45, 70), (200, 131), (33, 29)]:
        y, x = np.mgrid[0:height, 0:width]
        base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
        noise = rng.normal(0, 40, size=(height, width, 3))
        block = ((x // 7 + y // 5) % 2)[..., None] * 60
        pixels = np.clip(base + noise + block, 0, 255).astype(np.uint8)
        images.append(Image.fromarray(pixels, "RGB"))
    return images
