// The linear probe, trained in the span of the examples (reference/fewshot.py: train_probe).
// Logit weights V [C, D] = scale * text + A @ X, so training only needs the Gram matrix K = X X^T:
// logits of the examples are Z + K @ A^T, and the gradient of mean cross-entropy +
// mu/2 ||V - scale*text||^2 in A is (P - Y)^T / n + mu * A. A step costs C*n^2, not C*n*D.

import { zeros, type Matrix } from "./matrix";

export const PROBE_MU = [1.0, 0.1, 0.01, 0.001];
export const PROBE_STEPS = 200;

/**
 * gram K [n, n], zeroShot logits Z [n, C], one-hot targets Y [n, C] -> A [C, n].
 * Step 1/L with L = 0.5 * max row sum |K| / n + mu (softmax's Hessian is at most 0.5); constant
 * Nesterov momentum for a mu-strongly convex problem; PROBE_STEPS steps. No randomness.
 */
export function trainProbe(gram: Matrix, zeroShot: Matrix, targets: Matrix, mu: number): Matrix {
  const n = zeroShot.rows;
  const classes = zeroShot.cols;
  if (n === 0) return zeros(classes, 0);
  let maxRowSum = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.abs(gram.data[i * n + j]!);
    maxRowSum = Math.max(maxRowSum, s);
  }
  const lipschitz = (0.5 * maxRowSum) / n + mu;
  const rate = 1 / lipschitz;
  const root = Math.sqrt(mu / lipschitz);
  const momentum = (1 - root) / (1 + root);
  // Two [C, n] iterates rotate, plus the look-ahead [C, n] and probabilities [n, C]: no allocation per step.
  let previous = new Float64Array(classes * n);
  let current = new Float64Array(classes * n);
  const look = new Float64Array(classes * n);
  const logits = new Float64Array(n * classes);
  for (let step = 0; step < PROBE_STEPS; step++) {
    for (let k = 0; k < look.length; k++) look[k] = current[k]! + momentum * (current[k]! - previous[k]!);
    for (let i = 0; i < n; i++) {
      // Row i: logits = Z_i + K_i @ look^T, then softmax in place.
      let max = -Infinity;
      for (let c = 0; c < classes; c++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += gram.data[i * n + j]! * look[c * n + j]!;
        const v = zeroShot.data[i * classes + c]! + s;
        logits[i * classes + c] = v;
        max = Math.max(max, v);
      }
      let sum = 0;
      for (let c = 0; c < classes; c++) sum += Math.exp(logits[i * classes + c]! - max);
      for (let c = 0; c < classes; c++) logits[i * classes + c] = Math.exp(logits[i * classes + c]! - max) / sum;
    }
    // The buffer two steps old becomes the next iterate.
    const next = previous;
    for (let c = 0; c < classes; c++) {
      for (let i = 0; i < n; i++) {
        const grad = (logits[i * classes + c]! - targets.data[i * classes + c]!) / n + mu * look[c * n + i]!;
        next[c * n + i] = look[c * n + i]! - rate * grad;
      }
    }
    previous = current;
    current = next;
  }
  return { rows: classes, cols: n, data: current };
}

/** Logit weights [C, D] as float32: scale * text + A @ X. text [C, D], examples X [n, D], A [C, n]. */
export function probeWeights(text: Matrix, scale: number, examples: Matrix, a: Matrix): Float32Array {
  const out = new Float32Array(text.rows * text.cols);
  const d = text.cols;
  for (let c = 0; c < text.rows; c++) {
    for (let k = 0; k < d; k++) {
      let s = 0;
      for (let i = 0; i < examples.rows; i++) s += a.data[c * examples.rows + i]! * examples.data[i * d + k]!;
      out[c * d + k] = scale * text.data[c * d + k]! + s;
    }
  }
  return out;
}
