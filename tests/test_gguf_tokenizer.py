"""The fast tokenizer built from a GGUF's SentencePiece vocabulary tokenizes like llama.cpp's SPM
algorithm (tests/spm_reference.py), on a tiny written vocabulary here and on the real Gemma 3
vocabulary in tests/test_gguf_gemma3.py."""

from __future__ import annotations

import pytest

from exporter.gguf.reader import GgufFile
from exporter.gguf.tokenizer import spm_tokenizer
from gguf_tiny import tiny_vocabulary, write_tiny_gguf
from spm_reference import spm_encode

TEXTS = [
    "the cat in the hat",
    " leading and  double  spaces",
    "naïve café 東京 ✓",
    "then there are others",
    "<bos>the<eos> end",
    "",
]


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory):
    path = write_tiny_gguf(tmp_path_factory.mktemp("tok") / "tiny-llama.gguf", "llama")
    return spm_tokenizer(GgufFile(path))


@pytest.mark.parametrize("text", TEXTS)
def test_tiny_vocabulary_tokenizes_like_llama_cpp_spm(tiny_tokenizer, text):
    tokens, scores, types = tiny_vocabulary()
    expected = [2, *spm_encode(text, tokens, scores, types, add_space_prefix=False)]  # add_bos_token
    ids = tiny_tokenizer(text).input_ids
    assert ids == expected
    assert tiny_tokenizer.decode(ids, skip_special_tokens=True) == text.replace("<bos>", "").replace("<eos>", "")
