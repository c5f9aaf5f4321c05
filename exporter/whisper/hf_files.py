"""The JSON files of a Whisper artifact, in the layout Transformers.js reads.

config.json (WhisperConfig), generation_config.json (decoding rules: prompt, suppress lists,
no-timestamps, the no-speech token), preprocessor_config.json (log-mel parameters of
WhisperFeatureExtractor), tokenizer.json + tokenizer_config.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.errors import CorruptCheckpointError

if TYPE_CHECKING:
    from transformers import WhisperForConditionalGeneration, WhisperTokenizerFast

ENGLISH_ONLY_VOCAB = 51864  # multilingual Whisper has 51865 (one more language token)
NO_SPEECH_TOKENS = ("<|nospeech|>", "<|nocaptions|>")  # newer / older name of the same token


def _token_id(tokenizer: WhisperTokenizerFast, token: str) -> int | None:
    found = tokenizer.convert_tokens_to_ids(token)
    return None if found is None or found == tokenizer.unk_token_id else int(found)


def generation_config(model: WhisperForConditionalGeneration, tokenizer: WhisperTokenizerFast) -> dict:
    """Greedy transcription in English without timestamps, as CTranslate2 decodes it (see runtime/whisper_decode.py)."""
    config = model.config
    multilingual = config.vocab_size > ENGLISH_ONLY_VOCAB
    no_timestamps = _token_id(tokenizer, "<|notimestamps|>")
    no_speech = next((i for t in NO_SPEECH_TOKENS if (i := _token_id(tokenizer, t)) is not None), None)
    if no_timestamps is None or no_speech is None:
        raise CorruptCheckpointError(
            "the tokenizer lacks <|notimestamps|> or the no-speech token", fix="use the model's own tokenizer.json"
        )
    forced = [_token_id(tokenizer, "<|en|>"), _token_id(tokenizer, "<|transcribe|>")] if multilingual else []
    forced.append(no_timestamps)
    return {
        "decoder_start_token_id": config.decoder_start_token_id,
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id,
        "pad_token_id": config.pad_token_id,
        # Positions 1.. of the prompt after <|startoftranscript|>: (language, task,) <|notimestamps|>.
        "forced_decoder_ids": [[i + 1, tok] for i, tok in enumerate(forced)],
        "is_multilingual": multilingual,
        "lang_to_id": {"<|en|>": forced[0]} if multilingual else {},
        "task_to_id": {"transcribe": forced[1]} if multilingual else {},
        "no_timestamps_token_id": no_timestamps,
        "no_speech_token_id": no_speech,
        "return_timestamps": False,
        "suppress_tokens": list(config.suppress_tokens or []),
        "begin_suppress_tokens": list(config.begin_suppress_tokens or []),
        "max_length": config.max_target_positions,
        "do_sample": False,
        "num_beams": 1,
    }


def write_all(model: WhisperForConditionalGeneration, tokenizer: WhisperTokenizerFast, dest: Path) -> dict:
    """Writes every JSON file into dest; returns the generation config it wrote."""
    from transformers import WhisperFeatureExtractor

    model.config.save_pretrained(dest)
    generation = generation_config(model, tokenizer)
    (dest / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n", encoding="utf-8")
    WhisperFeatureExtractor(feature_size=model.config.num_mel_bins).save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    for extra in ("vocab.json", "merges.txt", "added_tokens.json", "special_tokens_map.json", "normalizer.json"):
        (dest / extra).unlink(missing_ok=True)  # tokenizer.json holds all of it; keep the artifact lean
    return generation
