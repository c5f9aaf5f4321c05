// Zero-shot scores from normalised embeddings, as the PyTorch models compute them:
// logits = logit_scale * cos + logit_bias; softmax over the labels (CLIP, ALIGN) or an
// independent sigmoid per label (SigLIP). Pure functions: used in the worker and the UI.

import type { VisionInfo } from "../manifest.gen";

export interface LabelScore {
  label: string;
  score: number;
  /** logit_scale * cos + logit_bias, before softmax/sigmoid */
  logit: number;
}

export function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export function l2Normalize(v: Float32Array): Float32Array {
  const norm = Math.sqrt(dot(v, v));
  return norm > 0 ? v.map((x) => x / norm) : v;
}

function softmax(logits: number[]): number[] {
  const max = Math.max(...logits);
  const exps = logits.map((l) => Math.exp(l - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/** Labels ranked by score for one image; `topK` keeps the best k (all when undefined). */
export function scoreLabels(image: Float32Array, texts: Float32Array[], labels: string[], info: VisionInfo,
  topK?: number): LabelScore[] {
  const logits = texts.map((t) => info.logit_scale * dot(image, t) + (info.logit_bias ?? 0));
  const scores = info.scoring === "sigmoid" ? logits.map(sigmoid) : softmax(logits);
  const ranked = labels.map((label, i) => ({ label, score: scores[i]!, logit: logits[i]! }))
    .sort((a, b) => b.score - a.score);
  return topK === undefined ? ranked : ranked.slice(0, topK);
}

/** The prompt for a label: the template's "{}" replaced; "{}" alone means the label as is. */
export function applyTemplate(template: string, label: string): string {
  return template.includes("{}") ? template.split("{}").join(label) : label;
}
