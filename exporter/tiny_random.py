"""Seeded random-weight vision-language models built from a config: for tests, speed and size work.

The same name always gives the same weights on the same machine (torch.manual_seed before the
model is built), so a test can rebuild the PyTorch reference of an exported model. Importing
this module is cheap (transformers loads on first use), so the CLI can check names instantly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerFast
    from transformers.image_processing_utils import BaseImageProcessor

SEED = 0
CLIP_VOCAB = 49408  # the real CLIP BPE (see tokenizer_files.py); tiny SigLIP reuses it
BERT_VOCAB = 30522  # BERT uncased WordPiece, ALIGN's text vocabulary
ALIGN_TEXT_MAX = 64  # ALIGN's tokenizer truncates at 64 (model_max_length of kakaobrain/align-base)
TINY_FAMILIES = {
    "tiny-random": "clip",
    "tiny-random-clip": "clip",
    "tiny-random-siglip": "siglip",
    "tiny-random-align": "align",
    "random-clip-vit-b32": "clip",  # the full ViT-B/32 architecture of the default CLIPConfig()
}
TINY_NAMES: tuple[str, ...] = tuple(TINY_FAMILIES)
TINY_ALIAS = {"tiny-random": "tiny-random-clip"}
_TINY_LAYERS = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
_TINY_VIT = dict(image_size=32, patch_size=8, **_TINY_LAYERS)


def config(name: str) -> PretrainedConfig:
    from transformers import AlignConfig, CLIPConfig, SiglipConfig

    if name == "random-clip-vit-b32":
        return CLIPConfig()
    family = TINY_FAMILIES[name]
    if family == "clip":
        text = dict(
            vocab_size=CLIP_VOCAB,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            **_TINY_LAYERS,
        )
        return CLIPConfig(text_config=text, vision_config=_TINY_VIT, projection_dim=32)
    if family == "siglip":
        text = dict(
            vocab_size=CLIP_VOCAB,
            max_position_embeddings=64,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            **_TINY_LAYERS,
        )
        return SiglipConfig(text_config=text, vision_config=_TINY_VIT)
    # ALIGN: three EfficientNet stages; the last stage's channels (32) are the image embedding size,
    # so the text projection matches them.
    vision = {
        "image_size": 32,
        "width_coefficient": 1.0,
        "depth_coefficient": 1.0,
        "kernel_sizes": [3, 3, 5],
        "in_channels": [32, 16, 24],
        "out_channels": [16, 24, 32],
        "strides": [1, 2, 2],
        "num_block_repeats": [1, 1, 1],
        "expand_ratios": [1, 6, 6],
        "hidden_dim": 64,
    }
    text = dict(vocab_size=BERT_VOCAB, max_position_embeddings=512, **_TINY_LAYERS)
    return AlignConfig(text_config=text, vision_config=vision, projection_dim=32)


def build(name: str) -> PreTrainedModel:
    """The seeded model for a tiny-random name, in eval mode (fp32, eager attention)."""
    import torch

    from exporter.vision import model_class

    cfg = config(name)
    cfg._attn_implementation = "eager"
    torch.manual_seed(SEED)
    return model_class(TINY_FAMILIES[name])(cfg).eval()


def tokenizer(name: str) -> PreTrainedTokenizerFast:
    """Real vocabularies: CLIP BPE for CLIP and SigLIP (no SigLIP SentencePiece offline), BERT for ALIGN."""
    from exporter import tokenizer_files

    if TINY_FAMILIES[name] == "align":
        return tokenizer_files.bert_uncased_tokenizer(ALIGN_TEXT_MAX)
    return tokenizer_files.clip_bpe_tokenizer(config(name).text_config.max_position_embeddings)


def processor(name: str) -> BaseImageProcessor:
    from exporter.preprocess_config import family_processor

    return family_processor(TINY_FAMILIES[name], config(name).vision_config.image_size)


def save_checkpoint(name: str, folder: Path) -> None:
    """A Hugging Face checkpoint folder (weights, tokenizer, processor), as save_pretrained writes it."""
    build(name).save_pretrained(folder)
    tokenizer(name).save_pretrained(folder)
    processor(name).save_pretrained(folder)
