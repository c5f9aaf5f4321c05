"""llama.cpp's SentencePiece (SPM) tokenization, written out plainly as an independent test reference.

Control and user-defined pieces are cut out of the raw text first (longest first); in each
remaining fragment (spaces -> "▁") the adjacent pair whose joined text is a vocabulary piece with
the highest score is merged (leftmost on ties) until none is left; symbols outside the vocabulary
become their UTF-8 bytes' <0xNN> tokens.
"""

from __future__ import annotations

CONTROL, USER_DEFINED = 3, 4


def spm_encode(
    text: str, tokens: list[str], scores: list[float], types: list[int], add_space_prefix: bool
) -> list[int]:
    ids = {t: i for i, t in enumerate(tokens)}
    specials = sorted(
        (t for t, k in zip(tokens, types, strict=True) if k in (CONTROL, USER_DEFINED)), key=len, reverse=True
    )
    out: list[int] = []
    fragment = ""
    i = 0
    while i < len(text):
        hit = next((s for s in specials if text.startswith(s, i)), None)
        if hit is None:
            fragment += text[i]
            i += 1
            continue
        out += _fragment(fragment, ids, scores, add_space_prefix and not out)
        out.append(ids[hit])
        fragment = ""
        i += len(hit)
    return out + _fragment(fragment, ids, scores, add_space_prefix and not out)


def _fragment(text: str, ids: dict[str, int], scores: list[float], prefix: bool) -> list[int]:
    if not text:
        return []
    symbols = list(("▁" if prefix else "") + text.replace(" ", "▁"))
    while True:
        best = None
        for j in range(len(symbols) - 1):
            joined = symbols[j] + symbols[j + 1]
            if joined in ids and (best is None or scores[ids[joined]] > best[0]):
                best = (scores[ids[joined]], j)
        if best is None:
            break
        j = best[1]
        symbols[j : j + 2] = [symbols[j] + symbols[j + 1]]
    out = []
    for s in symbols:
        out += [ids[s]] if s in ids else [ids[f"<0x{b:02X}>"] for b in s.encode("utf-8")]
    return out
