"""The combined dual-encoder graph that the peers' zero-shot pipelines load: onnx/model{,_quantized,_q4}.onnx.

Transformers.js (`pipeline('zero-shot-image-classification')`) and optimum
(`ORTModelForZeroShotImageClassification`) run one session with text and image inputs and read
`logits_per_image`. The graph is the model's own forward, so the learned logit scale (and
SigLIP's bias, ALIGN's temperature) live inside it, as they do in the peers' own exports. Our
engine keeps using the two towers; this file exists for the peers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn
from transformers import PreTrainedModel

from exporter.parity import cosine_stats, top1_agreement
from exporter.vision import export_onnx, text_input_names

OUTPUTS = ("logits_per_image", "logits_per_text", "text_embeds", "image_embeds")
FILE_STEM = "model"


class CombinedModel(nn.Module):
    """(input_ids [T, L], pixel_values [I, 3, S, S] (, attention_mask [T, L])) ->
    logits_per_image [I, T], logits_per_text [T, I], text_embeds [T, D], image_embeds [I, D] (unit length)."""

    def __init__(self, model: PreTrainedModel, pad_to: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.pad_to = pad_to
        self.pad_id = model.config.text_config.pad_token_id

    def forward(
        self, input_ids: torch.Tensor, pixel_values: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        if self.pad_to:  # SigLIP: [T, L] -> [T, pad_to], so `padding: true` callers get what max_length gives
            block = torch.zeros_like(input_ids[:, :1]).repeat(1, self.pad_to) + self.pad_id  # [T, pad_to]
            input_ids = torch.cat([input_ids, block], dim=1)[:, : self.pad_to]
        out = self.model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask)
        return tuple(getattr(out, name) for name in OUTPUTS)


def input_names(family: str) -> list[str]:
    return ["input_ids", "pixel_values", *text_input_names(family)[1:]]


def export_combined(model: PreTrainedModel, family: str, sample_ids: np.ndarray, image_size: int, dst: Path) -> None:
    """Text and image batches are independent dynamic axes, as is the text length (SigLIP pads inside)."""
    ids = torch.from_numpy(sample_ids)
    if family == "siglip":
        ids = ids[:, :8]  # shorter than pad_to, so the trace records the padding path
    pixels = torch.randn(3, 3, image_size, image_size)  # 3 images vs 2 texts: distinct batch sizes in the trace
    names = input_names(family)
    args = (ids, pixels) if len(names) == 2 else (ids, pixels, torch.ones_like(ids))
    text_axes = {0: "text_batch", 1: "sequence"}
    axes = {
        "input_ids": text_axes,
        "attention_mask": text_axes,
        "pixel_values": {0: "image_batch"},
        "logits_per_image": {0: "image_batch", 1: "text_batch"},
        "logits_per_text": {0: "text_batch", 1: "image_batch"},
        "text_embeds": {0: "text_batch"},
        "image_embeds": {0: "image_batch"},
    }
    axes = {k: v for k, v in axes.items() if k in names or k in OUTPUTS}
    export_onnx(CombinedModel(model, _pad_to(model, family)), args, dst, names, list(OUTPUTS), axes)


def _pad_to(model: PreTrainedModel, family: str) -> int | None:
    """SigLIP was trained on text padded to the full length, without a mask: the graph pads any shorter input."""
    return model.config.text_config.max_position_embeddings if family == "siglip" else None


def torch_reference(
    model: PreTrainedModel, pixel_values: np.ndarray, text_feeds: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The PyTorch fp32 forward on the probes: {output name: array}."""
    with torch.no_grad():
        out = CombinedModel(model).eval()(  # no padding needed: the probes come padded by tokenizer.json
            torch.from_numpy(text_feeds["input_ids"]),
            torch.from_numpy(pixel_values),
            torch.from_numpy(text_feeds["attention_mask"]) if "attention_mask" in text_feeds else None,
        )
    return {name: t.numpy() for name, t in zip(OUTPUTS, out, strict=True)}


def run(path: Path, pixel_values: np.ndarray, text_feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip(OUTPUTS, session.run(list(OUTPUTS), {"pixel_values": pixel_values, **text_feeds}), strict=True))


def parity(path: Path, pixel_values: np.ndarray, text_feeds: dict[str, np.ndarray], reference: dict) -> dict:
    """Embedding cosines, logit differences and per-image top-1 agreement of one combined file vs PyTorch."""
    got = run(path, pixel_values, text_feeds)
    ref_logits, logits = reference["logits_per_image"], got["logits_per_image"]  # [N images, M texts]
    return {
        "image_embeds": cosine_stats(reference["image_embeds"], got["image_embeds"]),
        "text_embeds": cosine_stats(reference["text_embeds"], got["text_embeds"]),
        "logits_per_image_max_abs_diff": float(np.abs(ref_logits - logits).max()),
        "logits_per_text_is_transpose": bool(np.array_equal(got["logits_per_text"], logits.T)),
        "top1_agreement": top1_agreement(ref_logits, logits),
    }
