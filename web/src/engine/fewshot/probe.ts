// The linear probe, trained in the span of the examples (reference/fewshot.py: train_probe).
// Logit weights V [C, D] = scale * text + A @ X, so training only needs the Gram matrix K = X X^T:
// logits of the examples are Z + K @ A^T, and the gradient of mean cross-entropy +
// mu/2 ||V - scale*text||^2 in A is (P - Y)^T / n + mu * A. A step costs C*n^2, not C*n*D.

import { matmulT, softmaxRows, zeros, type Matrix } from "./matrix";

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
  let a = zeros(classes, n);
  if (n === 0) return a;
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
  let previous = a;
  for (let step = 0; step < PROBE_STEPS; step++) {
    const look = zeros(classes, n);
    for (let k = 0; k < look.data.length; k++) look.data[k] = a.data[k]! + momentum * (a.data[k]! - previous.data[k]!);
    const logits = matmulT(gram, look); // [n, C]
    for (let k = 0; k < logits.data.length; k++) logits.data[k]! += zeroShot.data[k]!;
    const probs = softmaxRows(logits);
    const next = zeros(classes, n);
    for (let c = 0; c < classes; c++) {
      for (let i = 0; i < n; i++) {
        const grad = (probs.data[i * classes + c]! - targets.data[i * classes + c]!) / n + mu * look.data[c * n + i]!;
        next.data[c * n + i] = look.data[c * n + i]! - rate * grad;
      }
    }
    previous = a;
    a = next;
  }
  return a;
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
