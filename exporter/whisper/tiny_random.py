"""A seeded tiny Whisper for fast tests: real vocabulary size (the real tokenizer), 2 + 2 layers of width 64.

The input stays Whisper's: 80 mel bins x 3000 frames -> 1500 encoder positions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exporter.whisper.ct2_to_hf import EOT, SOT

if TYPE_CHECKING:
    from transformers import WhisperForConditionalGeneration

SEED = 0
VOCAB = 51864  # English-only Whisper
# Whisper tiny.en's suppress lists would do as well; a short one keeps the config readable.
SUPPRESS = [1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63, 90, 91, 92, 93]
SUPPRESS += [50357, 50358, 50359, 50360, 50361]


def build() -> WhisperForConditionalGeneration:
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(
        vocab_size=VOCAB,
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_source_positions=1500,
        max_target_positions=448,
        decoder_start_token_id=SOT,
        bos_token_id=EOT,
        eos_token_id=EOT,
        pad_token_id=EOT,
        suppress_tokens=SUPPRESS,
        begin_suppress_tokens=[220, EOT],
    )
    torch.manual_seed(SEED)
    model = WhisperForConditionalGeneration(config).eval()
    return model
