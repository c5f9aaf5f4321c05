"""mlc-chat-config.json for a Llama-family ChatML model, as WebLLM and `mlc_llm compile` read it.

Field names follow mlc-llm's MLCChatConfig / Conversation protocol (version "0.1.0") and WebLLM's
ChatConfig; the model_config keys are those of mlc-llm's LlamaConfig, so `mlc_llm compile` can
build the model library from this file alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from exporter.errors import CorruptCheckpointError, UnsupportedArchitectureError

MLC_CHAT_CONFIG_VERSION = "0.1.0"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
# mlc-llm's own ChatML default, used when the tokenizer's chat template names no system prompt.
FALLBACK_SYSTEM_MESSAGE = (
    "A conversation between a user and an LLM-based AI assistant. The assistant gives helpful and honest answers."
)
# Chunked prefill bounds the WebGPU scratch buffers; 2048 fits the 1 GiB maxBufferSize of software adapters.
MAX_PREFILL_CHUNK = 2048
# Sampling defaults when generation_config.json names none (mlc-llm's system defaults).
SAMPLING_DEFAULTS = {
    "temperature": 1.0,
    "top_p": 1.0,
    "repetition_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}


def read_tokenizer_json(tokenizer_dir: Path) -> dict[str, Any]:
    path = tokenizer_dir / "tokenizer.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise CorruptCheckpointError(
            f"{path} is missing: WebLLM needs a fast-tokenizer tokenizer.json",
            fix="save the tokenizer with AutoTokenizer.from_pretrained(...).save_pretrained(dir)",
        ) from err
    except (OSError, json.JSONDecodeError) as err:
        raise CorruptCheckpointError(
            f"{path} is not readable JSON: {err}", fix="re-save the tokenizer with save_pretrained()"
        ) from err


def token_id(tokenizer_json: dict[str, Any], content: str) -> int | None:
    """Id of a token in tokenizer.json: added tokens first, then the model vocabulary."""
    for added in tokenizer_json.get("added_tokens", []):
        if added.get("content") == content:
            return int(added["id"])
    vocab = tokenizer_json.get("model", {}).get("vocab")
    return int(vocab[content]) if isinstance(vocab, dict) and content in vocab else None


def active_vocab_size(tokenizer_json: dict[str, Any]) -> int:
    """len(tokenizer): the highest id the tokenizer can emit, plus one."""
    vocab = tokenizer_json.get("model", {}).get("vocab") or {}
    ids = list(vocab.values()) if isinstance(vocab, dict) else list(range(len(vocab)))
    ids += [int(t["id"]) for t in tokenizer_json.get("added_tokens", [])]
    return max(ids) + 1 if ids else 0


def tokenizer_info(tokenizer_json: dict[str, Any]) -> dict[str, Any]:
    """How WebLLM maps token strings back to bytes (used for grammar / JSON mode).

    Byte-level BPE (GPT-2, Llama-3, SmolLM2) -> "byte_level"; SentencePiece-style (Llama-2) -> "byte_fallback".
    """
    text = json.dumps({k: tokenizer_json.get(k) for k in ("pre_tokenizer", "decoder", "normalizer")})
    byte_level = '"ByteLevel"' in text
    prepend = not byte_level and ('"Prepend"' in text or '"prepend_scheme": "always"' in text)
    return {
        "token_postproc_method": "byte_level" if byte_level else "byte_fallback",
        "prepend_space_in_encode": prepend,
        "strip_space_in_decode": prepend,
    }


def default_system_message(chat_template: str | None) -> str:
    """The system prompt a ChatML chat template inserts when the user gives none (SmolLM2 has one)."""
    if chat_template:
        # Templates spell the newline either literally or as the two characters "\n".
        found = re.search(r"<\|im_start\|>system(?:\n|\\n)(.+?)<\|im_end\|>", chat_template, re.S)
        if found and "{" not in found.group(1):
            return found.group(1)
    return FALLBACK_SYSTEM_MESSAGE


def chatml_conv_template(stop_token_ids: list[int], system_message: str) -> dict[str, Any]:
    """mlc-llm's Conversation for ChatML: prompt = system, then `<|im_start|>role\\ncontent<|im_end|>\\n` per turn."""
    return {
        "name": "chatml",
        "system_template": f"{IM_START}system\n{{system_message}}{IM_END}\n",
        "system_message": system_message,
        "add_role_after_system_message": True,
        "roles": {"user": f"{IM_START}user", "assistant": f"{IM_START}assistant"},
        "role_templates": {"user": "{user_message}", "assistant": "{assistant_message}", "tool": "{tool_message}"},
        "messages": [],
        "seps": [f"{IM_END}\n"],
        "role_content_sep": "\n",
        "role_empty_sep": "\n",
        "stop_str": [IM_END],
        "stop_token_ids": stop_token_ids,
        "function_string": "",
        "use_function_calling": False,
    }


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]


def llama_model_config(hf_config: Any, context_window: int, prefill_chunk: int) -> dict[str, Any]:
    """mlc-llm LlamaConfig fields from a transformers LlamaConfig (rope_theta -> position_embedding_base)."""
    heads = hf_config.num_attention_heads
    return {
        "hidden_size": hf_config.hidden_size,
        "intermediate_size": hf_config.intermediate_size,
        "num_attention_heads": heads,
        "num_hidden_layers": hf_config.num_hidden_layers,
        "rms_norm_eps": hf_config.rms_norm_eps,
        "vocab_size": hf_config.vocab_size,
        "tie_word_embeddings": bool(hf_config.tie_word_embeddings),
        "position_embedding_base": float(getattr(hf_config, "rope_theta", 10000.0)),
        "rope_scaling": None,
        "context_window_size": context_window,
        "prefill_chunk_size": prefill_chunk,
        "num_key_value_heads": hf_config.num_key_value_heads or heads,
        "head_dim": getattr(hf_config, "head_dim", None) or hf_config.hidden_size // heads,
        "tensor_parallel_shards": 1,
        "pipeline_parallel_stages": 1,
        "max_batch_size": 1,  # WebLLM serves one sequence at a time
        "disaggregation": False,
    }


def build_chat_config(
    hf_config: Any,
    tokenizer_json: dict[str, Any],
    chat_template: str | None,
    generation_config: dict[str, Any],
    quantization: str,
    context_window: int,
    tokenizer_files: list[str],
) -> dict[str, Any]:
    """The whole mlc-chat-config.json. Raises UnsupportedArchitectureError for non-ChatML tokenizers."""
    im_end = token_id(tokenizer_json, IM_END)
    if im_end is None or token_id(tokenizer_json, IM_START) is None:
        raise UnsupportedArchitectureError(
            "the tokenizer has no <|im_start|>/<|im_end|> tokens; the MLC export writes a ChatML chat template only",
            fix="export a ChatML chat model (e.g. SmolLM2-Instruct), or pass --no-mlc",
        )
    prefill = min(context_window, MAX_PREFILL_CHUNK)
    # Stop on <|im_end|> whatever the checkpoint's eos says (GGUF conversions name <|im_start|>).
    stop_ids = sorted(set(_ids(generation_config.get("eos_token_id"))) | {im_end})
    sampling = {
        k: generation_config.get(k, v) if generation_config.get(k) is not None else v
        for k, v in SAMPLING_DEFAULTS.items()
    }
    bos = generation_config.get("bos_token_id", getattr(hf_config, "bos_token_id", None))
    return {
        "version": MLC_CHAT_CONFIG_VERSION,
        "model_type": "llama",
        "quantization": quantization,
        "model_config": llama_model_config(hf_config, context_window, prefill),
        "vocab_size": hf_config.vocab_size,
        "context_window_size": context_window,
        "sliding_window_size": -1,
        "prefill_chunk_size": prefill,
        "attention_sink_size": -1,
        "tensor_parallel_shards": 1,
        "pipeline_parallel_stages": 1,
        "active_vocab_size": active_vocab_size(tokenizer_json),
        **sampling,
        "tokenizer_files": tokenizer_files,
        "tokenizer_info": tokenizer_info(tokenizer_json),
        "conv_template": chatml_conv_template(stop_ids, default_system_message(chat_template)),
        "pad_token_id": generation_config.get("pad_token_id", getattr(hf_config, "pad_token_id", None)) or 0,
        "bos_token_id": bos,
        "eos_token_id": stop_ids if len(stop_ids) > 1 else stop_ids[0],
    }
