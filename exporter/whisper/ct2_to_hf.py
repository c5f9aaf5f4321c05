"""CTranslate2 WhisperSpec variables -> Hugging Face WhisperForConditionalGeneration (config + state dict).

CTranslate2 fuses projections: self-attention `linear_0` is [q; k; v] (3*d, d), cross-attention
`linear_0` is q and `linear_1` is [k; v] (2*d, d). Hugging Face keeps them apart and its k_proj
has no bias (the fused bias carries zeros there; checked). Weights are upcast to float32
exactly (fp16 -> fp32 loses nothing).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from exporter.errors import CorruptCheckpointError, UnsupportedArchitectureError
from exporter.whisper.ct2_reader import Ct2Model

if TYPE_CHECKING:
    from transformers import WhisperConfig

# Whisper's token layout around the text vocabulary (51864 = English-only, 51865 = multilingual).
EOT = 50256
SOT = 50257


def _require(model: Ct2Model, name: str) -> np.ndarray:
    try:
        return model.get(name)
    except KeyError as err:
        raise CorruptCheckpointError(
            f"CTranslate2 model has no variable {name!r}", fix="pass a model converted by ct2-transformers-converter"
        ) from err


def _count_layers(model: Ct2Model, side: str) -> int:
    found = {int(m.group(1)) for k in model.variables if (m := re.match(rf"{side}/layer_(\d+)/", k))}
    return max(found) + 1 if found else 0


def hf_config(model: Ct2Model, ct2_config: dict) -> WhisperConfig:
    """WhisperConfig from the variable shapes plus CTranslate2's config.json (suppress ids)."""
    from transformers import WhisperConfig

    if model.spec != "WhisperSpec":
        raise UnsupportedArchitectureError(
            f"model.bin holds a {model.spec}, not a WhisperSpec", fix="pass a CTranslate2 Whisper model folder"
        )
    vocab, d_model = _require(model, "decoder/embeddings/weight").shape
    ffn = _require(model, "encoder/layer_0/ffn/linear_0/weight").shape[0]
    heads_enc = int(_require(model, "encoder/num_heads"))
    heads_dec = int(_require(model, "decoder/num_heads"))
    return WhisperConfig(
        vocab_size=int(vocab),
        num_mel_bins=int(_require(model, "encoder/conv1/weight").shape[1]),
        d_model=int(d_model),
        encoder_layers=_count_layers(model, "encoder"),
        decoder_layers=_count_layers(model, "decoder"),
        encoder_attention_heads=heads_enc,
        decoder_attention_heads=heads_dec,
        encoder_ffn_dim=int(ffn),
        decoder_ffn_dim=int(_require(model, "decoder/layer_0/ffn/linear_0/weight").shape[0]),
        max_source_positions=int(_require(model, "encoder/position_encodings/encodings").shape[0]),
        max_target_positions=int(_require(model, "decoder/position_encodings/encodings").shape[0]),
        decoder_start_token_id=SOT,
        bos_token_id=EOT,
        eos_token_id=EOT,
        pad_token_id=EOT,
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [220, EOT])),
        tie_word_embeddings=True,
        architectures=["WhisperForConditionalGeneration"],
    )


def _linear(out: dict, hf: str, w: np.ndarray, b: np.ndarray | None) -> None:
    out[f"{hf}.weight"] = w
    if b is not None:
        out[f"{hf}.bias"] = b


def _norm(out: dict, hf: str, model: Ct2Model, ct2: str) -> None:
    out[f"{hf}.weight"] = _require(model, f"{ct2}/gamma")
    out[f"{hf}.bias"] = _require(model, f"{ct2}/beta")


def _split_qkv(out: dict, hf: str, model: Ct2Model, ct2: str, parts: tuple[str, ...]) -> None:
    """Fused CTranslate2 projection `ct2` (len(parts)*d rows) -> separate HF q/k/v_proj."""
    w, b = _require(model, f"{ct2}/weight"), _require(model, f"{ct2}/bias")
    for part, wi, bi in zip(parts, np.split(w, len(parts)), np.split(b, len(parts)), strict=True):
        if part == "k_proj" and np.any(bi != 0):  # HF has no k bias: a non-zero one would be silently dropped
            raise UnsupportedArchitectureError(
                f"{ct2}: key projection has a non-zero bias, which Whisper does not have",
                fix="this is not an OpenAI Whisper model; convert it from its original checkpoint",
            )
        _linear(out, f"{hf}.{part}", wi, None if part == "k_proj" else bi)


def _attention_block(out: dict, model: Ct2Model, ct2: str, hf: str) -> None:
    _split_qkv(out, f"{hf}.self_attn", model, f"{ct2}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
    o = f"{ct2}/self_attention/linear_1"
    _linear(out, f"{hf}.self_attn.out_proj", _require(model, f"{o}/weight"), _require(model, f"{o}/bias"))
    _norm(out, f"{hf}.self_attn_layer_norm", model, f"{ct2}/self_attention/layer_norm")
    for i, name in enumerate(("fc1", "fc2")):
        f = f"{ct2}/ffn/linear_{i}"
        _linear(out, f"{hf}.{name}", _require(model, f"{f}/weight"), _require(model, f"{f}/bias"))
    _norm(out, f"{hf}.final_layer_norm", model, f"{ct2}/ffn/layer_norm")


def hf_state_dict(model: Ct2Model, config: WhisperConfig) -> dict[str, np.ndarray]:
    """HF parameter name -> float32 array, for every parameter of WhisperForConditionalGeneration."""
    out: dict[str, np.ndarray] = {}
    for conv in ("conv1", "conv2"):
        _linear(out, f"model.encoder.{conv}", _require(model, f"encoder/{conv}/weight"), None)
        out[f"model.encoder.{conv}.bias"] = _require(model, f"encoder/{conv}/bias")
    out["model.encoder.embed_positions.weight"] = _require(model, "encoder/position_encodings/encodings")
    for i in range(config.encoder_layers):
        _attention_block(out, model, f"encoder/layer_{i}", f"model.encoder.layers.{i}")
    _norm(out, "model.encoder.layer_norm", model, "encoder/layer_norm")

    out["model.decoder.embed_tokens.weight"] = _require(model, "decoder/embeddings/weight")
    out["model.decoder.embed_positions.weight"] = _require(model, "decoder/position_encodings/encodings")
    for i in range(config.decoder_layers):
        ct2, hf = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        _attention_block(out, model, ct2, hf)
        q = f"{ct2}/attention/linear_0"
        _linear(out, f"{hf}.encoder_attn.q_proj", _require(model, f"{q}/weight"), _require(model, f"{q}/bias"))
        _split_qkv(out, f"{hf}.encoder_attn", model, f"{ct2}/attention/linear_1", ("k_proj", "v_proj"))
        o = f"{ct2}/attention/linear_2"
        _linear(out, f"{hf}.encoder_attn.out_proj", _require(model, f"{o}/weight"), _require(model, f"{o}/bias"))
        _norm(out, f"{hf}.encoder_attn_layer_norm", model, f"{ct2}/attention/layer_norm")
    _norm(out, "model.decoder.layer_norm", model, "decoder/layer_norm")
    if "decoder/projection/weight" in model.variables and not np.array_equal(
        model.variables["decoder/projection/weight"], out["model.decoder.embed_tokens.weight"]
    ):
        raise UnsupportedArchitectureError(
            "the output projection differs from the token embedding; Whisper ties them",
            fix="pass an OpenAI Whisper model converted by ct2-transformers-converter",
        )
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def to_hf_model(model: Ct2Model, ct2_config: dict):
    """A WhisperForConditionalGeneration (eval, float32) holding exactly the CTranslate2 weights."""
    import torch
    from transformers import WhisperForConditionalGeneration

    config = hf_config(model, ct2_config)
    hf = WhisperForConditionalGeneration(config).eval()
    state = {k: torch.from_numpy(v) for k, v in hf_state_dict(model, config).items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "proj_out.weight"]  # tied to embed_tokens
    if missing or unexpected:
        raise CorruptCheckpointError(
            f"weight mapping incomplete: missing {missing[:4]}, unexpected {unexpected[:4]}",
            fix="report this model: its layout differs from OpenAI Whisper",
        )
    hf.tie_weights()
    return hf
