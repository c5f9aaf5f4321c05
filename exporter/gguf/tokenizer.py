"""A GGUF's SentencePiece-BPE vocabulary (tokenizer.ggml.model == "llama", as in Gemma 3) -> a fast tokenizer.

transformers' GGUF conversion turns this vocabulary into a Unigram model, which segments differently
from llama.cpp ("The capital of France is" -> 11 ids instead of 6). llama.cpp's SPM tokenizer
repeatedly merges the adjacent pair whose joined piece has the highest score; the scores of these
files are minus the merge rank. A BPE model whose merges are ranked by that score makes the same
choices, so that is what is built here: every normal piece splits into (left, right) pieces of the
vocabulary, ranked by the joined piece's score; bytes outside the vocabulary fall back to <0xNN>.
"""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
from tokenizers.models import BPE
from transformers import PreTrainedTokenizerFast

from exporter.errors import UnsupportedArchitectureError
from exporter.gguf.reader import GgufFile

# llama.cpp token types
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def spm_merges(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[str, str]]:
    """Every split of every normal piece into two vocabulary pieces, best joined score first."""
    index = {t: i for i, t in enumerate(tokens) if types[i] == NORMAL}
    ranked: list[tuple[float, int, int, str, str]] = []
    for piece, i in index.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in index and right in index:
                ranked.append((-scores[i], index[left], index[right], left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def spm_tokenizer(gguf: GgufFile) -> PreTrainedTokenizerFast:
    """tokenizer.json-backed tokenizer of a SentencePiece-BPE GGUF, with its special tokens and chat template."""
    model = gguf.field("tokenizer.ggml.model")
    if model != "llama":
        raise UnsupportedArchitectureError(
            f"{gguf.path}: tokenizer model {model!r} is not SentencePiece (llama)",
            fix="use transformers' GGUF tokenizer for BPE (gpt2) vocabularies",
        )
    tokens = [str(t) for t in gguf.values("tokenizer.ggml.tokens")]
    scores = [float(s) for s in gguf.values("tokenizer.ggml.scores")]
    types = [int(t) for t in gguf.values("tokenizer.ggml.token_type")]
    unk = gguf.integer("tokenizer.ggml.unknown_token_id") or 0
    backend = Tokenizer(
        BPE(
            vocab={t: i for i, t in enumerate(tokens)},
            merges=spm_merges(tokens, scores, types),
            unk_token=tokens[unk],
            byte_fallback=True,
            fuse_unk=True,
        )
    )
    replace_space = normalizers.Replace(" ", "▁")
    if gguf.field("tokenizer.ggml.add_space_prefix", False):
        backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), replace_space])
    else:
        backend.normalizer = replace_space
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    # llama.cpp matches control and user-defined pieces in the raw text before SPM ("\n", "<start_of_turn>")
    backend.add_tokens(
        [AddedToken(tokens[i], special=False, normalized=False) for i, kind in enumerate(types) if kind == USER_DEFINED]
    )
    backend.add_special_tokens(
        [AddedToken(tokens[i], special=True, normalized=False) for i, kind in enumerate(types) if kind == CONTROL]
    )

    def special(role: str) -> str | None:
        token_id = gguf.integer(f"tokenizer.ggml.{role}_token_id")
        return None if token_id is None else tokens[token_id]

    bos = special("bos")
    if bos is not None and gguf.field("tokenizer.ggml.add_bos_token", False):
        bos_id = tokens.index(bos)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 $B:1", special_tokens=[(bos, bos_id)]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=special("eos"),
        unk_token=tokens[unk],
        pad_token=special("padding"),
    )
    template = gguf.field("tokenizer.chat_template")
    tokenizer.chat_template = str(template) if template else None
    return tokenizer
