"""The artifact contract: `artifacts/manifest.json`, shared by exporter/, server/ and web/.

Pure pydantic, no heavy imports: the server validates with it at start, the exporter before it
commits, and web/ is typed from the JSON Schema it emits (contract/manifest.schema.json).

On disk (see exporter/artifacts.py):
    artifacts/manifest.json
    artifacts/.rev/<id>/<revision>/...     immutable files of one export
    artifacts/<id> -> .rev/<id>/<revision>  symlink, so ecosystem loaders see <id>/onnx/...
A file's `path` is logical, `<id>/<rest>`; it is served at /models/<id>/<rest>.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION: Literal[1] = 1
Scoring = Literal["softmax", "sigmoid"]
MlcQuantization = Literal["q0f32", "q0f16", "q4f32_1", "q4f16_1"]
MANIFEST_NAME = "manifest.json"
REVISIONS_DIR = ".rev"
# One optional "org/" level, as hub ids have; no dot-only segments, so no traversal.
MODEL_ID_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)?$"
_REL_PATH_CHARS = re.compile(r"^[A-Za-z0-9_.@/-]+$")

Runtime = Literal["wasm", "webgpu"]
Task = Literal["zero-shot-image-classification", "text-generation", "automatic-speech-recognition"]
Family = Literal["clip", "siglip", "align", "llama", "whisper"]
ConfigRole = Literal["tokenizer", "tokenizer_config", "config", "preprocessor", "chat_template", "generation_config"]
# The file each config role has in a model folder (Hugging Face's names, so the folder loads anywhere).
CONFIG_FILES: dict[ConfigRole, str] = {
    "tokenizer": "tokenizer.json",
    "tokenizer_config": "tokenizer_config.json",
    "config": "config.json",
    "preprocessor": "preprocessor_config.json",
    "chat_template": "chat_template.jinja",
    "generation_config": "generation_config.json",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(_Strict):
    path: str = Field(description="Logical path '<id>/<rest>', served at /models/<path>.")
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        parts = v.split("/")
        if not _REL_PATH_CHARS.match(v) or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"file path must be relative with no '.' or '..' segments: {v!r}")
        return v


class Variant(_Strict):
    """One precision of a model: the ONNX files a runtime loads for it, by role."""

    dtype: Literal["fp32", "fp16", "int8", "q4", "q4f16", "q8"]
    files: dict[str, str] = Field(
        description="role -> logical path, e.g. vision_model -> '<id>/onnx/vision_model_quantized.onnx'"
    )
    note: str | None = None
    expand_weights: list[Runtime] = Field(
        default_factory=list,
        description="Runtimes that rewrite this variant's quantized weights to fp32 once at load (same download, "
        "fp32 speed, 4 bytes a weight in memory), chosen by measurement; others run the file as it is.",
    )


class VisionInfo(_Strict):
    """What the browser needs to score images against texts exactly as PyTorch does."""

    scoring: Scoring
    logit_scale: float = Field(description="Already exponentiated: logits = logit_scale * cos + logit_bias.")
    logit_bias: float = 0.0
    template: str = Field(description="Default prompt; '{}' is replaced by the label.")
    image_size: int
    embed_dim: int
    text_max_length: int
    pad_to_max_length: bool = Field(description="SigLIP pads every text to text_max_length.")
    text_inputs: list[str] = Field(
        description="ONNX input names of the text tower, e.g. ['input_ids', 'attention_mask']."
    )


class MlcBuild(_Strict):
    quantization: MlcQuantization
    path: str = Field(description="Logical folder that WebLLM is pointed at (it appends resolve/main/).")
    model_lib: str | None = Field(description="Logical path of the compiled WebGPU library, or null when not built.")
    model_lib_status: str = Field(description="'built' or why not, with the command that builds it.")
    requires_shader_f16: bool


class LlmInfo(_Strict):
    context_length: int
    num_layers: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    eos_token_ids: list[int]
    bos_token_id: int | None = None
    mlc: list[MlcBuild] = Field(default_factory=list)


class SpeechInfo(_Strict):
    """What the browser needs to turn audio into Whisper's input and decode it as the reference does."""

    sample_rate: int = Field(description="Hz; audio is resampled to this, mono.")
    n_mels: int
    chunk_seconds: float = Field(description="Length of one encoder window (30 s for Whisper).")
    timestamps: Literal["chunk-offsets", "tokens"] = Field(
        description="Where segment times come from: window offsets, or Whisper's timestamp tokens."
    )
    languages: list[str] = Field(description="Language codes the model transcribes, e.g. ['en'].")


class ModelEntry(_Strict):
    id: str = Field(pattern=MODEL_ID_PATTERN)
    revision: str = Field(
        pattern=r"^[0-9a-f]{16}$", description="Hash of the export's file list; names .rev/<id>/<revision>."
    )
    task: Task
    family: Family
    source: str = Field(description="What it was exported from (hub id, path, or tiny-random name).")
    trained: bool = Field(description="False for random-weight test models: the UI must say so.")
    note: str | None = Field(default=None, description="Shown to users, e.g. how to get a real model.")
    files: list[FileEntry]
    variants: dict[str, Variant]
    defaults: dict[Runtime, str] = Field(description="runtime -> variant name, chosen by measurement.")
    report: str | None = Field(default=None, description="Logical path of export-report.json.")
    configs: dict[ConfigRole, str] = Field(
        default_factory=dict,
        description="role -> logical path of each config file the model has: web/ reads these, never guesses names.",
    )
    vision: VisionInfo | None = None
    llm: LlmInfo | None = None
    speech: SpeechInfo | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelEntry:
        listed = {f.path for f in self.files}
        prefix = self.id + "/"
        for f in self.files:
            if not f.path.startswith(prefix):
                raise ValueError(f"{f.path!r} is not under model folder {prefix!r}")
        for name, variant in self.variants.items():
            for role, path in variant.files.items():
                if path not in listed:
                    raise ValueError(f"variant {name!r} role {role!r} names unlisted file {path!r}")
        for runtime, name in self.defaults.items():
            if name not in self.variants:
                raise ValueError(f"default for {runtime!r} names unknown variant {name!r}")
        for role, path in self.configs.items():
            if path not in listed:
                raise ValueError(f"config role {role!r} names unlisted file {path!r}")
        if self.report is not None and self.report not in listed:
            raise ValueError(f"report {self.report!r} is not a listed file")
        if (self.task == "zero-shot-image-classification") != (self.vision is not None):
            raise ValueError("vision info is required for, and only for, zero-shot-image-classification")
        if (self.task == "text-generation") != (self.llm is not None):
            raise ValueError("llm info is required for, and only for, text-generation")
        if (self.task == "automatic-speech-recognition") != (self.speech is not None):
            raise ValueError("speech info is required for, and only for, automatic-speech-recognition")
        return self

    def file(self, path: str) -> FileEntry | None:
        return next((f for f in self.files if f.path == path), None)


class Manifest(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    models: list[ModelEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Manifest:
        ids = [m.id for m in self.models]
        if len(ids) != len(set(ids)):
            raise ValueError(f"duplicate model ids in manifest: {ids}")
        return self

    def get(self, model_id: str) -> ModelEntry | None:
        return next((m for m in self.models if m.id == model_id), None)

    def with_model(self, entry: ModelEntry) -> Manifest:
        """A copy with `entry` added, replacing any model of the same id (order kept)."""
        others = [m for m in self.models if m.id != entry.id]
        if len(others) == len(self.models):
            return Manifest(models=[*others, entry])
        return Manifest(models=[entry if m.id == entry.id else m for m in self.models])


def revision_dir(root: Path, entry: ModelEntry) -> Path:
    return root / REVISIONS_DIR / entry.id / entry.revision


def load_manifest(root: Path) -> Manifest:
    """Reads and validates artifacts/manifest.json; an absent file is an empty manifest."""
    path = root / MANIFEST_NAME
    if not path.exists():
        return Manifest()
    return Manifest.model_validate_json(path.read_text(encoding="utf-8"))


def json_schema() -> dict:
    return Manifest.model_json_schema()


if __name__ == "__main__":  # python -m contract.manifest > contract/manifest.schema.json
    print(json.dumps(json_schema(), indent=2))
