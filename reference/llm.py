"""An exported chat LLM (artifacts/<id>/...) in Python onnxruntime, as the browser runs it.

Same files and rules as web/src/engine/llm.ts: the manifest's default WASM variant, the chat
template from tokenizer_config.json (or chat_template.jinja) rendered with jinja2, tokenizer.json
through the `tokenizers` library without adding special tokens again, and generation stopping on
the manifest's eos_token_ids plus generation_config.json's eos_token_id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from contract.manifest import ModelEntry, load_manifest
from reference.errors import ArtifactsError
from reference.sampling import SeededRandom, sample_token
from runtime.onnx_decoder import OnnxDecoder

_SPECIALS = ("bos_token", "eos_token", "unk_token", "pad_token")


@dataclass(frozen=True)
class Generation:
    text: str
    token_ids: list[int]  # without the stop token
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int


def llm_entry(root: Path, model_id: str) -> ModelEntry:
    entry = load_manifest(root).get(model_id)
    if entry is None or entry.llm is None:
        raise ArtifactsError(
            f"{root} has no chat model {model_id!r}",
            fix=f"export one: python -m exporter llm --model smollm2 --out {root}",
        )
    return entry


def _template_source(folder: Path, config: dict) -> str:
    """tokenizer_config.json's chat_template (a string, or named templates with "default" first), else the .jinja file."""
    value = config.get("chat_template")
    if isinstance(value, list):
        value = next((t for t in value if t.get("name") == "default"), value[0] if value else {}).get("template")
    if isinstance(value, str):
        return value
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text(encoding="utf-8")
    raise ArtifactsError(f"{folder.name} has no chat template", fix="re-export the model")


def _special_text(value: object) -> str | None:
    if isinstance(value, dict):
        return str(value.get("content"))
    return value if isinstance(value, str) else None


class ChatLLM:
    def __init__(self, root: Path, model_id: str, variant: str | None = None, threads: int = 2) -> None:
        self.entry = llm_entry(root, model_id)
        self.folder = root / model_id  # tokenizer and config files
        self.variant = variant or self.entry.defaults["wasm"]
        files = self.entry.variants[self.variant].files
        model_path = next(p for p in files.values() if p.endswith(".onnx"))  # the rest is external data
        self.decoder = OnnxDecoder(root / model_path, threads=threads)
        folder = root / model_id
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        self.template = env.from_string(_template_source(folder, config))
        self.specials = {k: t for k in _SPECIALS if (t := _special_text(config.get(k))) is not None}
        self.stop_ids = set(self.entry.llm.eos_token_ids)  # type: ignore[union-attr]
        generation_config = folder / "generation_config.json"
        if generation_config.is_file():
            eos = json.loads(generation_config.read_text(encoding="utf-8")).get("eos_token_id")
            self.stop_ids |= set(eos if isinstance(eos, list) else [] if eos is None else [eos])

    @property
    def model_id(self) -> str:
        return self.entry.id

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.template.render(messages=messages, add_generation_prompt=True, **self.specials)
        return self.tokenizer.encode(text, add_special_tokens=False).ids  # the template wrote them already

    def generate(
        self,
        messages: list[dict[str, str]],
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> Generation:
        prompt = self.prompt_ids(messages)
        budget = min(max_new_tokens, self.entry.llm.context_length - len(prompt))  # type: ignore[union-attr]
        rng = SeededRandom(seed)
        logits, past = self.decoder.forward(prompt, self.decoder.empty_past())  # logits [S, V]
        tokens: list[int] = []
        finish = "length"
        while len(tokens) < budget:
            token = sample_token(logits[-1], temperature, top_p, rng)
            if token in self.stop_ids:
                finish = "stop"
                break
            tokens.append(token)
            if len(tokens) < budget:
                logits, past = self.decoder.forward([token], past)
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return Generation(text=text, token_ids=tokens, finish_reason=finish, prompt_tokens=len(prompt))
