// The few-shot requests between api.ts and the worker (merged into protocol.ts's Requests).

import type { ImagePayload } from "../vision/image";
import type { LabelScore } from "../vision/scoring";
import type { FewShotMethod } from "./fit";
import type { ClassifierFile, ClassifierSummary } from "./record";

/** An example: an image to embed, or an embedding already made by the loaded model (e.g. the search index). */
export type ExampleWire = { label: string } & ({ image: ImagePayload } | { embedding: Float32Array });

export interface FitRequestWire {
  labels: string[];
  examples: ExampleWire[];
  /** "auto" (default): the probe or the cache, whichever leave-one-out prefers. */
  method?: FewShotMethod | "auto";
  /** Prompt for the zero-shot weights; default: the model family's. */
  template?: string;
  /** Seeds the fold shuffle above 32 examples (10-fold cross-validation there); default 0. */
  seed?: number;
  name?: string;
  /** Replace this saved classifier (same id) instead of adding one. */
  replace?: string;
}

export interface FitResult extends ClassifierSummary {
  /** Every candidate's leave-one-out score, in grid order (what the choice was made from). */
  candidates: { method: FewShotMethod; params: Record<string, number>; correct: number; nll: number }[];
  /** Milliseconds of choosing and fitting (leave-one-out included), without embedding. */
  fitMs: number;
}

/** Zero-shot and adapted rankings of the same embeddings, best first. */
export interface Comparison {
  zeroShot: LabelScore[][];
  adapted: LabelScore[][];
}

/** Requests never carry a field named `id`: the worker message's own id would overwrite it. */
export interface FewshotRequests {
  fewshotFit: { request: FitRequestWire; result: FitResult };
  fewshotList: { request: Record<string, never>; result: ClassifierSummary[] };
  fewshotExport: { request: { classifier: string }; result: ClassifierFile };
  fewshotImport: { request: { file: unknown }; result: ClassifierSummary };
  fewshotDelete: { request: { classifier: string }; result: null };
  /** Both rankings for embeddings the page already has (no image decoding). */
  fewshotCompare: { request: { classifier: string; embeddings: Float32Array[]; topK?: number }; result: Comparison };
}
