// Tip-Adapter's cache (Zhang et al., ECCV 2022) over the user's examples (reference/fewshot.py:
// tip_logits): zero-shot logits + alpha * exp(-beta * (1 - cos(x, example))) @ one_hot(labels).

import { matmulT, zeros, type Matrix } from "./matrix";

export const TIP_ALPHA = [0.25, 0.5, 1, 2, 4, 8, 16, 32, 64];
export const TIP_BETA = [1, 3, 10, 30, 100, 300];

/**
 * Affinity-weighted label votes [m, C]: cosines [m, n] between queries and examples, example labels
 * [n]; `skipSelf` drops entry (i, i) (leave-one-out over the examples themselves).
 */
export function cacheVotes(cosines: Matrix, labels: ArrayLike<number>, classes: number, beta: number,
  skipSelf = false): Matrix {
  const out = zeros(cosines.rows, classes);
  for (let i = 0; i < cosines.rows; i++) {
    for (let j = 0; j < cosines.cols; j++) {
      if (skipSelf && i === j) continue;
      out.data[i * classes + labels[j]!]! += Math.exp(-beta * (1 - cosines.data[i * cosines.cols + j]!));
    }
  }
  return out;
}

/** queries [m, D], text [C, D], keys [n, D] with labels [n] -> logits [m, C]. */
export function tipLogits(queries: Matrix, text: Matrix, scale: number, keys: Matrix, labels: ArrayLike<number>,
  alpha: number, beta: number): Matrix {
  const logits = matmulT(queries, text);
  const votes = cacheVotes(matmulT(queries, keys), labels, text.rows, beta);
  for (let k = 0; k < logits.data.length; k++) logits.data[k] = scale * logits.data[k]! + alpha * votes.data[k]!;
  return logits;
}
