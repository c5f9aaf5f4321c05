// Few-shot fitting on locked image embeddings (docs/fewshot.md; numpy reference: reference/fewshot.py).
// Candidates (probe: each mu; tip: each alpha, beta) are scored by cross-validation on the user's own
// examples: leave-one-out up to MAX_LOO examples, else FOLDS folds from a seeded shuffle. The
// best candidate is then fitted on all examples. Deterministic: same inputs and seed, same classifier.

import { SeededRandom } from "../llm/sampling";
import { InvalidRequestError } from "../errors";
import { argmaxRow, fromRows, logSoftmaxRow, matmulT, oneHot, pick, scale, softmaxRows, type Matrix } from "./matrix";
import { PROBE_MU, probeWeights, trainProbe } from "./probe";
import { cacheVotes, TIP_ALPHA, TIP_BETA, tipLogits } from "./tip";

/** Exact leave-one-out up to here (the probe is trained once per example); above, FOLDS-fold cross-validation. */
export const MAX_LOO = 32;
export const FOLDS = 10;
export const METHODS = ["probe", "tip"] as const;
export type FewShotMethod = (typeof METHODS)[number];
/** Held-out log-likelihoods closer than this (relative) tie; the first in grid order wins. */
const TIE = 1e-9;

export interface Candidate {
  method: FewShotMethod;
  params: Record<string, number>;
  /** Held-out examples predicted right. */
  correct: number;
  /** Sum over held-out examples of -log p(true class). */
  nll: number;
}

/** What fit() learns; all arrays row-major. */
export interface FittedClassifier {
  method: FewShotMethod;
  params: Record<string, number>;
  /** The zero-shot logit scale (logit = scale * cos). */
  scale: number;
  classes: number;
  dim: number;
  /** [C * D] unit rows: the zero-shot classifier (class text embeddings). */
  text: Float32Array;
  /** [n * D] unit rows: the labelled examples' image embeddings. */
  examples: Float32Array;
  /** [n] class index of each example. */
  exampleLabels: Int32Array;
  /** probe: logit weights [C * D]; tip: null. */
  weights: Float32Array | null;
  folds: number;
  /** Share of examples predicted right when held out, for the chosen candidate. */
  looAccuracy: number;
  candidates: Candidate[];
}

/** (folds, fold of each example): one example per fold up to MAX_LOO, else a seeded shuffle dealt round-robin into FOLDS. */
export function foldOfEach(n: number, seed: number): { folds: number; fold: Int32Array } {
  if (n <= MAX_LOO) return { folds: n, fold: Int32Array.from({ length: n }, (_, i) => i) };
  const order = Array.from({ length: n }, (_, i) => i);
  const rng = new SeededRandom(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const fold = new Int32Array(n);
  order.forEach((example, k) => { fold[example] = k % FOLDS; });
  return { folds: FOLDS, fold };
}

/** Held-out logits [m, C] and class indices [m] -> correct count and sum of -log p(true). */
function score(logits: Matrix, targets: ArrayLike<number>): { correct: number; nll: number } {
  let correct = 0;
  let nll = 0;
  const row = new Float64Array(logits.cols);
  for (let i = 0; i < logits.rows; i++) {
    if (argmaxRow(logits, i) === targets[i]) correct++;
    nll -= logSoftmaxRow(logits, i, row)[targets[i]!]!;
  }
  return { correct, nll };
}

function probeCandidates(x: Matrix, y: Int32Array, text: Matrix, logitScale: number, fold: Int32Array,
  folds: number): Candidate[] {
  const gram = matmulT(x, x);
  const zeroShot = scale(matmulT(x, text), logitScale);
  const targets = oneHot(y, text.rows);
  const all = Array.from({ length: text.rows }, (_, c) => c);
  return PROBE_MU.map((mu) => {
    let correct = 0;
    let nll = 0;
    for (let f = 0; f < folds; f++) {
      const train: number[] = [];
      const held: number[] = [];
      fold.forEach((g, i) => (g === f ? held : train).push(i));
      const a = trainProbe(pick(gram, train, train), pick(zeroShot, train, all), pick(targets, train, all), mu);
      const logits = matmulT(pick(gram, held, train), a); // [held, C]
      const z = pick(zeroShot, held, all);
      for (let k = 0; k < logits.data.length; k++) logits.data[k]! += z.data[k]!;
      const s = score(logits, held.map((i) => y[i]!));
      correct += s.correct;
      nll += s.nll;
    }
    return { method: "probe" as const, params: { mu }, correct, nll };
  });
}

/** Exact leave-one-out: each example's own cache entry is dropped. */
function tipCandidates(x: Matrix, y: Int32Array, text: Matrix, logitScale: number): Candidate[] {
  const zeroShot = scale(matmulT(x, text), logitScale);
  const cosines = matmulT(x, x);
  const out: Candidate[] = [];
  for (const alpha of TIP_ALPHA) {
    for (const beta of TIP_BETA) {
      const votes = cacheVotes(cosines, y, text.rows, beta, true);
      for (let k = 0; k < votes.data.length; k++) votes.data[k] = zeroShot.data[k]! + alpha * votes.data[k]!;
      out.push({ method: "tip", params: { alpha, beta }, ...score(votes, y) });
    }
  }
  return out;
}

/** Most held-out examples right; ties: lower held-out NLL; still tied (within TIE): the first. */
export function best(candidates: Candidate[]): Candidate {
  let chosen = candidates[0]!;
  for (const c of candidates.slice(1)) {
    if (c.correct > chosen.correct ||
      (c.correct === chosen.correct && c.nll < chosen.nll - TIE * Math.max(1, Math.abs(chosen.nll)))) chosen = c;
  }
  return chosen;
}

export interface FitInput {
  /** Class text embeddings, unit length, one per class. */
  text: Float32Array[];
  scale: number;
  /** Example image embeddings, unit length. */
  examples: Float32Array[];
  /** Class index of each example. */
  labels: number[];
  method?: FewShotMethod | "auto";
  seed?: number;
}

function check(input: FitInput, method: string): number {
  if (method !== "auto" && !(METHODS as readonly string[]).includes(method)) {
    throw new InvalidRequestError(`unknown few-shot method "${method}"`, "use \"probe\", \"tip\" or \"auto\"");
  }
  if (input.text.length < 2) throw new InvalidRequestError(`need at least 2 classes, got ${input.text.length}`, "give 2 or more labels");
  if (input.examples.length === 0) throw new InvalidRequestError("no labelled examples", "give at least one example image with its label");
  const dim = input.text[0]!.length;
  if ([...input.text, ...input.examples].some((v) => v.length !== dim)) {
    throw new InvalidRequestError(`example and text embeddings differ in size (text: ${dim})`,
      "embed the examples with the same vision model as the labels");
  }
  if (input.labels.length !== input.examples.length ||
    input.labels.some((l) => !Number.isInteger(l) || l < 0 || l >= input.text.length)) {
    throw new InvalidRequestError("an example's label is not one of the labels", "label every example with one of the given labels");
  }
  return dim;
}

/** The classifier chosen by cross-validation among `method`'s candidates ("auto", the default: both methods). */
export function fit(input: FitInput): FittedClassifier {
  const method = input.method ?? "auto";
  const dim = check(input, method);
  const x = fromRows(input.examples, dim);
  const text = fromRows(input.text, dim);
  const y = Int32Array.from(input.labels);
  const { folds, fold } = foldOfEach(x.rows, input.seed ?? 0);
  const candidates: Candidate[] = [];
  if (method === "probe" || method === "auto") candidates.push(...probeCandidates(x, y, text, input.scale, fold, folds));
  if (method === "tip" || method === "auto") candidates.push(...tipCandidates(x, y, text, input.scale));
  const chosen = best(candidates);
  let weights: Float32Array | null = null;
  if (chosen.method === "probe") {
    const a = trainProbe(matmulT(x, x), scale(matmulT(x, text), input.scale), oneHot(y, text.rows), chosen.params["mu"]!);
    weights = probeWeights(text, input.scale, x, a);
  }
  return {
    method: chosen.method, params: { ...chosen.params }, scale: input.scale, classes: text.rows, dim,
    text: new Float32Array(text.data), examples: new Float32Array(x.data), exampleLabels: y, weights, folds,
    looAccuracy: chosen.correct / x.rows, candidates,
  };
}

/** queries (unit image embeddings) -> logits [m, C]. */
export function classifierLogits(classifier: FittedClassifier, queries: Float32Array[]): Matrix {
  const q = fromRows(queries, classifier.dim);
  const rows = (data: Float32Array, n: number): Matrix => ({ rows: n, cols: classifier.dim, data: Float64Array.from(data) });
  const text = rows(classifier.text, classifier.classes);
  if (classifier.method === "probe") return matmulT(q, rows(classifier.weights!, classifier.classes));
  const keys = rows(classifier.examples, classifier.exampleLabels.length);
  const { alpha, beta } = classifier.params as { alpha: number; beta: number };
  return tipLogits(q, text, classifier.scale, keys, classifier.exampleLabels, alpha, beta);
}

/** queries -> class probabilities, one Float64Array [C] per query (softmax over the classes). */
export function predict(classifier: FittedClassifier, queries: Float32Array[]): Float64Array[] {
  const probs = softmaxRows(classifierLogits(classifier, queries));
  return Array.from({ length: probs.rows }, (_, i) => probs.data.slice(i * probs.cols, (i + 1) * probs.cols));
}
