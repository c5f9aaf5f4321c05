"""Does a description pair really tell its two classes apart in the vision model's own space?

An EX2-style check (Esfandiarpoor et al., "If CLIP Could Talk", 2024: the descriptions a vision
model responds to are often not the ones a person would pick). A small LLM writes features that
read well but carry nothing the text tower separates ("black with gold feathers" for a cat and a
dog): averaged into a class embedding they only add noise. So every feature pair is scored in the
model's embedding space and pairs that do not move similarity toward their own class are dropped.

* Text-text (no images needed; used to drop): each bare feature against the two classes' template
  prompts, ta and tb (unit rows):
      text = ½ [(fa.ta - fa.tb) + (fb.tb - fb.ta)]
  Positive: each feature sits nearer its own class than the other one. The class names are not in
  the feature, so they cannot carry the score; the shared sentence frame cancels in each difference.
* Image-text (the explorer, given images of class a): how much the full description pair widens
  the images' margin between the two classes over the template pair:
      image = mean_x [(x.da - x.db) - (x.ta - x.tb)]

web/src/engine/fudd/separation.ts computes the same; tests/test_browser_fudd.py compares them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference.fudd import TextEmbedder
from reference.vision import apply_template


def text_separation(ta: np.ndarray, tb: np.ndarray, fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """ta, tb [D], fa, fb [n, D], all unit -> [n]."""
    return 0.5 * ((fa @ ta - fa @ tb) + (fb @ tb - fb @ ta))


def image_separation(images: np.ndarray, da: np.ndarray, db: np.ndarray, ta: np.ndarray, tb: np.ndarray) -> np.ndarray:
    """images [N, D] of class a, da, db [n, D], ta, tb [D], all unit -> [n]."""
    template_margin = images @ ta - images @ tb  # [N]
    return ((images @ da.T - images @ db.T) - template_margin[:, None]).mean(axis=0)


@dataclass(frozen=True)
class Checked:
    """One feature pair of an answer, checked."""

    descriptions: tuple[str, str]  # the full texts embedded for (a, b)
    text: float  # text_separation
    kept: bool  # text > the threshold: it takes part in re-ranking


class SeparationCheck:
    """Scores an answer's feature pairs and keeps those above `min_text` (contract/fudd_prompt.json)."""

    def __init__(self, embed_texts: TextEmbedder, min_text: float) -> None:
        self.embed_texts, self.min_text = embed_texts, min_text

    def __call__(
        self, a: str, b: str, template: str, features: list[tuple[str, str]], descriptions: list[tuple[str, str]]
    ) -> list[Checked]:
        n = len(features)
        rows = self.embed_texts(
            [apply_template(template, a), apply_template(template, b)]
            + [fa for fa, _ in features]
            + [fb for _, fb in features]
        )
        unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        scores = text_separation(unit[0], unit[1], unit[2 : 2 + n], unit[2 + n :])
        return [Checked(pair, float(s), bool(s > self.min_text)) for pair, s in zip(descriptions, scores, strict=True)]
