"""Fixed probe inputs for the vision-language towers, and every exported file run against PyTorch on them.

Images go through the *written* preprocessor_config.json and texts through the *written*
tokenizer.json, so the probe checks the files the browser will read, not in-memory objects.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import transformers
from PIL import Image, ImageDraw
from transformers import PreTrainedModel

from exporter.parity import cosine_stats, top1_agreement
from exporter.vision import ImageTower, TextTower
from runtime.image_processor import load_written_processor

LABELS = (
    "cat",
    "dog",
    "car",
    "tree",
    "house",
    "bird",
    "boat",
    "flower",
    "airplane",
    "bicycle",
    "horse",
    "mountain",
    "beach",
    "apple",
    "chair",
    "clock",
    "guitar",
    "train",
    "cup",
    "book",
)
EXTRA_TEXTS = (
    "",
    "Café au lait, naïve façade — déjà vu!",
    "two dogs playing in the snow at night",
    " ".join(["a very long caption that goes on"] * 20),
)  # the last is truncated to max length
_SIZES = [
    (64, 48),
    (48, 80),
    (100, 100),
    (120, 90),
    (90, 120),
    (64, 64),
    (200, 50),
    (37, 53),
    (80, 80),
    (150, 100),
    (96, 72),
    (128, 96),
]


def probe_images(seed: int = 1234) -> list[Image.Image]:
    """Twelve seeded pictures of varied sizes and aspect ratios: gradients, shapes, checkerboards, noise."""
    rng = np.random.default_rng(seed)
    images = []
    for i, (w, h) in enumerate(_SIZES):
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x / w, y / h, (x + y) / (w + h)], axis=-1)  # [H, W, 3] gradient in [0, 1]
        base = np.roll(base, i, axis=-1) if i % 3 else 1.0 - base
        if i % 4 == 3:
            base = base * ((x // 8 + y // 8) % 2)[..., None]  # checkerboard
        if i == 7:
            base = rng.random((h, w, 3))  # noise
        img = Image.fromarray((base * 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(img)
        for _ in range(i % 4 + 1):  # a few seeded ellipses and rectangles
            x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            box = (x0, y0, x0 + int(rng.integers(4, w // 2 + 5)), y0 + int(rng.integers(4, h // 2 + 5)))
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        images.append(img)
    return images


def probe_texts(template: str) -> list[str]:
    """The label prompts first (zero-shot agreement uses them), then edge cases."""
    return [template.format(label) for label in LABELS] + list(EXTRA_TEXTS)


def pixels(folder: Path, images: list[Image.Image]) -> np.ndarray:
    """[N, 3, S, S] float32 from the slow HF image processor loaded from folder/preprocessor_config.json."""
    return load_written_processor(folder)(images=images, return_tensors="np")["pixel_values"].astype(np.float32)


def torch_embeddings(
    model: PreTrainedModel, pixel_values: np.ndarray, text_feeds: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The PyTorch fp32 reference: {"image": [N, D], "text": [M, D]}, unit length."""
    with torch.no_grad():
        image = ImageTower(model).eval()(torch.from_numpy(pixel_values))
        text = TextTower(model).eval()(**{k: torch.from_numpy(v) for k, v in text_feeds.items()})
    return {"image": image.numpy(), "text": text.numpy()}


def run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def parity(
    files: dict[str, Path],
    pixel_values: np.ndarray,
    text_feeds: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
) -> dict:
    """Cosine stats per tower, and zero-shot top-1 agreement over LABELS with the PyTorch fp32 model."""
    image = run_onnx(files["vision_model"], {"pixel_values": pixel_values})
    text = run_onnx(files["text_model"], text_feeds)
    n = len(LABELS)
    agreement = top1_agreement(reference["image"] @ reference["text"][:n].T, image @ text[:n].T)  # [N, labels]
    return {
        "vision_model": cosine_stats(reference["image"], image),
        "text_model": cosine_stats(reference["text"], text),
        "zero_shot_top1_agreement": agreement,
    }


def versions() -> dict[str, str]:
    return {
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
