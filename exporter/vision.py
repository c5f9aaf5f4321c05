"""CLIP / SigLIP / ALIGN: checkpoint loading, scoring constants, and the two towers as ONNX files.

Each tower is a small wrapper around the model's get_image_features / get_text_features that
L2-normalizes inside the graph, so the browser only takes dot products.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AlignModel, CLIPModel, PreTrainedModel, SiglipModel

from contract.manifest import Scoring as ScoringKind
from exporter.errors import load_failure

OPSET = 17  # LayerNormalization as one op; supported by onnxruntime(-web)


def model_class(family: str) -> type[PreTrainedModel]:
    return {"clip": CLIPModel, "siglip": SiglipModel, "align": AlignModel}[family]


def load_checkpoint(folder: Path, family: str) -> PreTrainedModel:
    """from_pretrained in fp32, eager attention, eval mode; unreadable weights -> CorruptCheckpointError."""
    try:
        model = model_class(family).from_pretrained(folder, torch_dtype=torch.float32, attn_implementation="eager")
    except Exception as err:  # safetensors, torch and OS errors all mean "these files are not a model"
        raise load_failure(family, folder, err) from err
    return model.eval()


def text_max_length(model: PreTrainedModel, tokenizer_max: int | None) -> int:
    """Longest text the tower takes: the tokenizer's limit, capped by the position table.

    transformers reports an unset limit as a huge number (1e30), which the cap handles too.
    """
    positions = model.config.text_config.max_position_embeddings
    return min(positions, tokenizer_max) if tokenizer_max else positions


def text_input_names(family: str) -> list[str]:
    # SigLIP was trained on fixed-length padded text without a mask.
    return ["input_ids"] if family == "siglip" else ["input_ids", "attention_mask"]


class ImageTower(nn.Module):
    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] -> [B, D]
        return nn.functional.normalize(self.model.get_image_features(pixel_values=pixel_values), dim=-1)


class TextTower(nn.Module):
    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        # input_ids, attention_mask: [B, T] int64 -> [B, D]
        features = self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        return nn.functional.normalize(features, dim=-1)


@dataclass(frozen=True)
class Scoring:
    """How logits follow from the normalized embeddings: logits = scale * cos + bias."""

    kind: ScoringKind
    logit_scale: float
    logit_bias: float


def scoring(model: PreTrainedModel, family: str) -> Scoring:
    if family == "align":  # logits = cos / temperature
        return Scoring("softmax", float(1.0 / model.temperature.item()), 0.0)
    if family == "siglip":
        return Scoring("sigmoid", float(model.logit_scale.exp().item()), float(model.logit_bias.item()))
    return Scoring("softmax", float(model.logit_scale.exp().item()), 0.0)


def export_image_tower(model: PreTrainedModel, image_size: int, dst: Path) -> None:
    """pixel_values [batch, 3, S, S] -> image_embeds [batch, D] (unit length); dynamic batch."""
    dummy = torch.randn(2, 3, image_size, image_size)
    export_onnx(
        ImageTower(model),
        (dummy,),
        dst,
        ["pixel_values"],
        ["image_embeds"],
        {"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
    )


def export_text_tower(model: PreTrainedModel, family: str, sample_ids: np.ndarray, dst: Path) -> None:
    """input_ids [batch, seq] (+ attention_mask) -> text_embeds [batch, D]; SigLIP's seq is fixed."""
    names = text_input_names(family)
    sample_ids = torch.from_numpy(sample_ids)
    args = (sample_ids,) if len(names) == 1 else (sample_ids, torch.ones_like(sample_ids))
    seq_axis = {} if family == "siglip" else {1: "sequence"}
    axes = {name: {0: "batch", **seq_axis} for name in names} | {"text_embeds": {0: "batch"}}
    export_onnx(TextTower(model), args, dst, names, ["text_embeds"], axes)


def export_onnx(
    module: nn.Module, args: tuple, dst: Path, inputs: list[str], outputs: list[str], axes: dict[str, dict[int, str]]
) -> None:
    module.eval()  # a fresh wrapper is in training mode, and export restores that mode onto the model
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about python-side shape checks are expected
        torch.onnx.export(
            module,
            args,
            str(dst),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
