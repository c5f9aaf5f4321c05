// Does a description pair really tell its two classes apart in the vision model's own space? An
// EX2-style check (Esfandiarpoor et al., "If CLIP Could Talk", 2024); the formulas and why are in
// reference/fudd_separation.py, which tests/test_browser_fudd.py compares this with.
//   text  = ½ [(fa.ta - fa.tb) + (fb.tb - fb.ta)]            bare features vs template prompts
//   image = mean_x [(x.da - x.db) - (x.ta - x.tb)]            images of a, full descriptions
// All vectors unit length. Feature pairs with text <= min_text (contract/fudd_prompt.json) are dropped.

import { applyTemplate, dot, l2Normalize } from "../vision/scoring";
import type { TextEmbedder } from "./fudd";

/** One feature pair of an answer, checked. */
export interface Checked {
  /** The full texts embedded for (labels[0], labels[1]). */
  descriptions: [string, string];
  /** text separation (above) */
  text: number;
  /** text > min_text: it takes part in re-ranking */
  kept: boolean;
}

export function textSeparation(ta: Float32Array, tb: Float32Array, fa: Float32Array, fb: Float32Array): number {
  return 0.5 * ((dot(fa, ta) - dot(fa, tb)) + (dot(fb, tb) - dot(fb, ta)));
}

/** images [N][D] of class a -> how much the pair (da, db) widens their margin over the templates (ta, tb). */
export function imageSeparation(images: Float32Array[], da: Float32Array, db: Float32Array,
  ta: Float32Array, tb: Float32Array): number {
  const gains = images.map((x) => (dot(x, da) - dot(x, db)) - (dot(x, ta) - dot(x, tb)));
  return gains.reduce((s, g) => s + g, 0) / gains.length;
}

/** Scores an answer's feature pairs and keeps those above minText. */
export type SeparationCheck = (labels: [string, string], features: Array<[string, string]>,
  descriptions: Array<[string, string]>) => Promise<Checked[]>;

export function separationCheck(embedTexts: TextEmbedder, template: string, minText: number): SeparationCheck {
  return async ([a, b], features, descriptions) => {
    const rows = (await embedTexts([applyTemplate(template, a), applyTemplate(template, b),
      ...features.map(([fa]) => fa), ...features.map(([, fb]) => fb)])).map(l2Normalize);
    const n = features.length;
    return descriptions.map((pair, i) => {
      const text = textSeparation(rows[0]!, rows[1]!, rows[2 + i]!, rows[2 + n + i]!);
      return { descriptions: pair, text, kept: text > minText };
    });
  };
}
