"""A CLIP-family model folder (artifacts/<id>/...) in Python onnxruntime: embeddings and scores.

Images go through the HF image processor loaded from the written preprocessor_config.json and
texts through the written tokenizer.json (its truncation/padding settings), exactly the files the
browser reads. Embeddings come out unit length; scores follow the manifest's VisionInfo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

from contract.manifest import ModelEntry, Runtime, VisionInfo, load_manifest
from reference.errors import ArtifactsError
from runtime.image_processor import load_written_processor
from runtime.onnx_int8_expand import expand_int8_weights
from runtime.text_tokens import tokenize

BATCH = 32  # texts or images per onnxruntime call: bounded memory, few calls


def apply_template(template: str, label: str) -> str:
    """The prompt for a label: every "{}" replaced; no "{}" means the label as is (as web/src/engine/scoring.ts)."""
    return template.replace("{}", label) if "{}" in template else label


def unit_rows(x: np.ndarray) -> np.ndarray:
    """[N, D] -> [N, D] with rows of length 1 (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1)


def softmax(x: np.ndarray) -> np.ndarray:  # over the last axis
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def scores_from_cosines(cos: np.ndarray, info: VisionInfo) -> np.ndarray:
    """cos [..., C] -> scores [..., C]: logit_scale * cos + logit_bias, then softmax over C or sigmoid each."""
    logits = info.logit_scale * cos + info.logit_bias
    return 1 / (1 + np.exp(-logits)) if info.scoring == "sigmoid" else softmax(logits)


def vision_entry(root: Path, model_id: str) -> ModelEntry:
    entry = load_manifest(root).get(model_id)
    if entry is None or entry.vision is None:
        raise ArtifactsError(
            f"{root} has no vision model {model_id!r}",
            fix=f"export one: python -m exporter clip --model <checkpoint> --out {root}",
        )
    return entry


def _session(path: Path, options: ort.SessionOptions, expand: bool) -> ort.InferenceSession:
    """The file as it is, or with its dynamic int8 products expanded to fp32 (4-bit MatMulNBits needs
    no rewrite here: onnxruntime dequantizes it to fp32 before its GEMM, the same numbers)."""
    model: str | bytes = str(path)
    if expand:
        model = expand_int8_weights(onnx.load(str(path))).model.SerializeToString()
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class VisionModel:
    """The two towers of one exported variant (default: the manifest's WASM default, as the browser picks)."""

    def __init__(
        self,
        root: Path,
        model_id: str,
        variant: str | None = None,
        threads: int = 2,
        runtime: Runtime | None = None,
        expand: bool | None = None,
    ) -> None:
        """`runtime`: None runs the files as they are (as native onnxruntime and the peers do); a runtime
        mirrors the browser's loading there: where the variant lists it in expand_weights, the int8
        products run in fp32 over weights dequantized once. `expand` overrides that choice, as the
        engine's `expandWeights` does."""
        self.entry = vision_entry(root, model_id)
        self.info: VisionInfo = self.entry.vision  # type: ignore[assignment]
        self.variant = variant or self.entry.defaults["wasm"]
        if self.variant not in self.entry.variants:
            raise ArtifactsError(
                f"{model_id} has no variant {self.variant!r} (has {', '.join(self.entry.variants)})",
                fix="pick one of the listed variants",
            )
        files = self.entry.variants[self.variant].files
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        by_manifest = runtime is not None and runtime in self.entry.variants[self.variant].expand_weights
        self.expanded = by_manifest if expand is None else expand
        self.vision = _session(root / files["vision_model"], options, self.expanded)
        self.text = _session(root / files["text_model"], options, self.expanded)
        self.folder = root / model_id
        self.processor = load_written_processor(self.folder)

    def pixel_values(self, images: list[Image.Image]) -> np.ndarray:  # [N, 3, S, S] float32
        return self.processor(images=[im.convert("RGB") for im in images], return_tensors="np")["pixel_values"]

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:  # [N, D], unit rows
        out = [
            self.vision.run(["image_embeds"], {"pixel_values": self.pixel_values(images[i : i + BATCH])})[0]
            for i in range(0, len(images), BATCH)
        ]
        return unit_rows(np.concatenate(out).astype(np.float32))

    def embed_texts(self, texts: list[str]) -> np.ndarray:  # [N, D], unit rows
        out = []
        for i in range(0, len(texts), BATCH):
            feeds = tokenize(self.folder / "tokenizer.json", texts[i : i + BATCH], self.info.text_inputs)
            out.append(self.text.run(["text_embeds"], feeds)[0])
        return (
            unit_rows(np.concatenate(out).astype(np.float32)) if out else np.zeros((0, self.info.embed_dim), np.float32)
        )

    def scores(self, image_embeds: np.ndarray, text_embeds: np.ndarray) -> np.ndarray:
        """image_embeds [N, D], text_embeds [C, D] (unit rows) -> [N, C] probabilities."""
        return scores_from_cosines(image_embeds @ text_embeds.T, self.info)
