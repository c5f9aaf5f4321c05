"""FuDD re-ranking (Esfandiarpoor & Bach, ICLR 2024) over embeddings: pure numpy, no model calls.

First pass: every label with the template. Follow-up: the top-K labels only; each gets the union
of the descriptions written for its pairs with the other candidates; its text embedding is the
unit-length mean of its unit-length description embeddings; those scores (logit_scale * cos +
logit_bias, softmax over the K or sigmoid each) replace the first pass. web/src/engine/fudd.ts
computes the same; ties keep first-pass order on both sides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from contract.manifest import VisionInfo
from reference.vision import apply_template, scores_from_cosines, unit_rows

DEFAULT_K = 5
# (label a, label b) -> (descriptions of a, descriptions of b) that tell the two apart
PairDescriber = Callable[[str, str], tuple[list[str], list[str]]]
TextEmbedder = Callable[[list[str]], np.ndarray]  # texts [n] -> [n, D], unit rows


@dataclass(frozen=True)
class Scored:
    label: str
    score: float


@dataclass(frozen=True)
class FuddResult:
    first_pass: list[Scored]  # every label, best first
    reranked: list[Scored]  # the K candidates, best first
    descriptions: dict[str, list[str]]  # candidate -> the descriptions its embedding averages


def ranked(labels: list[str], scores: np.ndarray) -> list[Scored]:
    """Best first; equal scores keep label order (a stable sort, as JavaScript's)."""
    order = sorted(range(len(labels)), key=lambda i: -float(scores[i]))
    return [Scored(labels[i], float(scores[i])) for i in order]


def top_k(labels: list[str], scores: np.ndarray, k: int) -> list[str]:
    return [s.label for s in ranked(labels, scores)[: max(1, min(k, len(labels)))]]


def unique(items: Iterable[str]) -> list[str]:
    """First occurrences, in order: a class's description set is a union."""
    return list(dict.fromkeys(items))


def class_descriptions(candidates: list[str], describe: PairDescriber, template: str) -> dict[str, list[str]]:
    """Each candidate's descriptions: the union over its pairs with the other candidates (in candidate order).
    A lone candidate (K = 1) has no pairs and keeps its template prompt."""
    found: dict[str, list[str]] = {label: [] for label in candidates}
    for a, b in combinations(candidates, 2):
        for_a, for_b = describe(a, b)
        found[a] += for_a
        found[b] += for_b
    return {label: unique(texts) or [apply_template(template, label)] for label, texts in found.items()}


def class_embedding(description_embeds: np.ndarray) -> np.ndarray:
    """[n, D] -> [D]: the unit-length mean of the unit-length rows."""
    return unit_rows(unit_rows(description_embeds).mean(axis=0, keepdims=True))[0]


def rerank(
    image_embed: np.ndarray,
    labels: list[str],
    first_scores: np.ndarray,
    k: int,
    describe: PairDescriber,
    embed_texts: TextEmbedder,
    info: VisionInfo,
) -> FuddResult:
    """image_embed [D] (unit), first_scores [C] over labels -> the K candidates re-scored with descriptions."""
    candidates = top_k(labels, first_scores, k)
    descriptions = class_descriptions(candidates, describe, info.template)
    texts = unique(t for label in candidates for t in descriptions[label])
    embeds = dict(zip(texts, embed_texts(texts), strict=True))  # each distinct text embedded once
    classes = np.stack([class_embedding(np.stack([embeds[t] for t in descriptions[c]])) for c in candidates])  # [K, D]
    scores = scores_from_cosines(classes @ image_embed, info)  # [K]
    return FuddResult(ranked(labels, first_scores), ranked(candidates, scores), descriptions)
