// A saved few-shot classifier: the JSON file users export and import, and the IndexedDB record
// (the same object). Weights are re-derived on import and must match the file within 1e-5: a
// file edited by hand, or written by a different algorithm, is refused rather than trusted.

import { CorruptFileError, InvalidRequestError } from "../errors";
import { fit, METHODS, type FewShotMethod, type FittedClassifier } from "./fit";

export const FILE_FORMAT = "lumen-fewshot-classifier";
export const FILE_VERSION = 1;
const WEIGHT_TOLERANCE = 1e-5;

export interface ModelKey {
  id: string;
  revision: string;
  /** The variant whose embeddings trained it (others of the same revision differ by quantization error). */
  variant: string;
}

export interface ClassifierFile {
  format: typeof FILE_FORMAT;
  version: typeof FILE_VERSION;
  id: string;
  name: string;
  createdAt: string;
  model: ModelKey;
  labels: string[];
  template: string;
  method: FewShotMethod;
  params: Record<string, number>;
  scale: number;
  seed: number;
  folds: number;
  looAccuracy: number;
  /** [C][D]: the zero-shot classifier (unit text embeddings of the template per label). */
  text: number[][];
  examples: { label: string; embedding: number[] }[];
  /** probe: [C][D] logit weights; tip: null. */
  weights: number[][] | null;
}

/** What lists show: no embeddings. */
export interface ClassifierSummary {
  id: string;
  name: string;
  createdAt: string;
  model: ModelKey;
  labels: string[];
  method: FewShotMethod;
  params: Record<string, number>;
  examples: number;
  /** Examples per label, in label order. */
  perLabel: number[];
  looAccuracy: number;
  folds: number;
  /** Its size as an exported JSON file (UTF-8): about what IndexedDB stores for it. */
  bytes: number;
}

const rowsOf = (flat: Float32Array, dim: number): number[][] =>
  Array.from({ length: flat.length / dim }, (_, i) => Array.from(flat.subarray(i * dim, (i + 1) * dim)));

export function toFile(fitted: FittedClassifier, meta: { id: string; name: string; model: ModelKey; labels: string[];
  template: string; seed: number }): ClassifierFile {
  return {
    format: FILE_FORMAT, version: FILE_VERSION, id: meta.id, name: meta.name, createdAt: new Date().toISOString(),
    model: meta.model, labels: meta.labels, template: meta.template, method: fitted.method, params: fitted.params,
    scale: fitted.scale, seed: meta.seed, folds: fitted.folds, looAccuracy: fitted.looAccuracy,
    text: rowsOf(fitted.text, fitted.dim),
    examples: rowsOf(fitted.examples, fitted.dim).map((embedding, i) => ({ label: meta.labels[fitted.exampleLabels[i]!]!, embedding })),
    weights: fitted.weights && rowsOf(fitted.weights, fitted.dim),
  };
}

export function summarize(file: ClassifierFile): ClassifierSummary {
  return {
    id: file.id, name: file.name, createdAt: file.createdAt, model: file.model, labels: file.labels, method: file.method,
    params: file.params, examples: file.examples.length, looAccuracy: file.looAccuracy, folds: file.folds,
    perLabel: file.labels.map((l) => file.examples.filter((e) => e.label === l).length),
    bytes: new TextEncoder().encode(JSON.stringify(file)).length,
  };
}

/** The arrays predict() needs (no refit). */
export function toFitted(file: ClassifierFile): FittedClassifier {
  const dim = file.text[0]!.length;
  const flat = (rows: number[][]) => Float32Array.from(rows.flat());
  return {
    method: file.method, params: file.params, scale: file.scale, classes: file.labels.length, dim,
    text: flat(file.text), examples: flat(file.examples.map((e) => e.embedding)),
    exampleLabels: Int32Array.from(file.examples.map((e) => file.labels.indexOf(e.label))),
    weights: file.weights && flat(file.weights), folds: file.folds, looAccuracy: file.looAccuracy, candidates: [],
  };
}

const isNumberRows = (v: unknown, rows: number | null, dim: number): v is number[][] => Array.isArray(v) &&
  (rows === null || v.length === rows) && v.every((r) => Array.isArray(r) && r.length === dim &&
    r.every((x) => typeof x === "number" && Number.isFinite(x)));

/**
 * Checks an imported file against the loaded model and re-fits it from its own examples: the method,
 * leave-one-out accuracy and weights must come out as the file says.
 */
export function checkFile(value: unknown, model: { id: string; embedDim: number }): ClassifierFile {
  const bad = (what: string) => new CorruptFileError(`not a Lumen few-shot classifier file: ${what}`,
    "export the classifier again from Lumen's Storage tab (engine.fewshot.export)");
  const f = value as Partial<ClassifierFile> | null;
  if (!f || typeof f !== "object" || f.format !== FILE_FORMAT) throw bad(`"format" is not "${FILE_FORMAT}"`);
  if (f.version !== FILE_VERSION) throw bad(`version ${String(f.version)}; this Lumen reads version ${FILE_VERSION}`);
  if (typeof f.id !== "string" || typeof f.name !== "string" || !f.model || typeof f.model.id !== "string") throw bad("id, name or model missing");
  if (f.model.id !== model.id) {
    throw new InvalidRequestError(`this classifier was trained on ${f.model.id}; the loaded model is ${model.id}`,
      `load ${f.model.id} first, then import it`);
  }
  const dim = model.embedDim;
  if (!Array.isArray(f.labels) || f.labels.length < 2 || !f.labels.every((l) => typeof l === "string")) throw bad("labels");
  if (!isNumberRows(f.text, f.labels.length, dim)) throw bad(`text must be ${f.labels.length} rows of ${dim} numbers`);
  if (!Array.isArray(f.examples) || f.examples.length === 0 || !f.examples.every((e) => e && f.labels!.includes(e.label))) {
    throw bad("examples must be labelled with the file's labels");
  }
  if (!isNumberRows(f.examples.map((e) => e.embedding), null, dim)) throw bad(`example embeddings must have ${dim} numbers`);
  if (!(METHODS as readonly string[]).includes(f.method as string)) throw bad(`method ${String(f.method)}`);
  const file = f as ClassifierFile;
  const refit = fit({
    text: file.text.map((r) => Float32Array.from(r)), scale: file.scale,
    examples: file.examples.map((e) => Float32Array.from(e.embedding)), labels: file.examples.map((e) => file.labels.indexOf(e.label)),
    method: file.method, seed: file.seed,
  });
  const weightsAgree = file.weights === null ? refit.weights === null : refit.weights !== null &&
    isNumberRows(file.weights, file.labels.length, dim) &&
    file.weights.flat().every((w, i) => Math.abs(w - refit.weights![i]!) <= WEIGHT_TOLERANCE);
  if (JSON.stringify(refit.params) !== JSON.stringify(file.params) || !weightsAgree) {
    throw bad("its weights or hyperparameters do not follow from its own examples");
  }
  return file;
}
