"""A generated few-shot data set with real visual structure: shapes x colours x textures, drawn with Pillow.

Each class is one combination ("striped red triangle"); every image varies what the class does not
fix: position, size, rotation, background, a colour jitter, stripe width and angle, pixel noise.
Images are a pure function of (split, class, index), so the training pool and the held-out test
split never share an image and every run draws the same pictures.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (215, 40, 40), "blue": (40, 70, 215)}
TEXTURES = ("plain", "striped")
SIZE = 128
POOL, TEST = 0, 1  # split ids: examples are drawn from POOL, accuracy is measured on TEST


@dataclass(frozen=True)
class ShapeClass:
    shape: str
    colour: str
    texture: str

    @property
    def label(self) -> str:
        return f"{self.texture} {self.colour} {self.shape}"


CLASSES = [ShapeClass(s, c, t) for t, c, s in product(TEXTURES, COLOURS, SHAPES)]  # 12 classes


def _mask(shape: str, rng: np.random.Generator) -> Image.Image:
    """The shape's silhouette (L mode, 255 inside) at a random place, size and rotation."""
    mask = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(mask)
    radius = rng.uniform(0.22, 0.36) * SIZE
    cx, cy = rng.uniform(radius + 4, SIZE - radius - 4, size=2)
    if shape == "circle":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=255)
    else:
        sides = 4 if shape == "square" else 3
        draw.regular_polygon(
            (float(cx), float(cy), float(radius)), sides, rotation=float(rng.uniform(0, 360)), fill=255
        )
    return mask


def _texture(kind: ShapeClass, rng: np.random.Generator) -> np.ndarray:
    """[SIZE, SIZE, 3] float: the class colour (jittered), striped with near-white for "striped"."""
    colour = np.clip(np.array(COLOURS[kind.colour], dtype=np.float64) + rng.integers(-30, 31, 3), 0, 255)
    fill = np.broadcast_to(colour, (SIZE, SIZE, 3)).copy()
    if kind.texture == "striped":
        angle, width = rng.uniform(0, np.pi), rng.uniform(5, 9)
        y, x = np.mgrid[0:SIZE, 0:SIZE]
        light = ((x * np.cos(angle) + y * np.sin(angle)) // width) % 2 == 1
        fill[light] = 240
    return fill


def render(split: int, class_index: int, index: int) -> Image.Image:
    """One RGB image of class `class_index`, the `index`-th of `split`."""
    kind = CLASSES[class_index]
    rng = np.random.default_rng([split, class_index, index])
    background = np.broadcast_to(rng.integers(150, 256, 3).astype(np.float64), (SIZE, SIZE, 3))
    inside = np.asarray(_mask(kind.shape, rng), dtype=np.float64)[..., None] / 255  # anti-aliasing free: 0 or 1
    pixels = inside * _texture(kind, rng) + (1 - inside) * background + rng.normal(0, 6, (SIZE, SIZE, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def images(split: int, per_class: int) -> tuple[list[Image.Image], np.ndarray]:
    """`per_class` images of every class, class-major, and their class indices."""
    out, labels = [], []
    for c in range(len(CLASSES)):
        out += [render(split, c, i) for i in range(per_class)]
        labels += [c] * per_class
    return out, np.array(labels)
