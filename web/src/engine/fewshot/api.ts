// engine.fewshot on the main thread: teach the loaded vision model by example (docs/fewshot.md).
//
//   const { id, looAccuracy } = await engine.fewshot.fit({ labels, examples: [{ image, label }, ...], method? });
//   await engine.classify({ images, labels, classifier: id });       // adapted scores
//   await engine.fewshot.compare({ classifier: id, embeddings });    // zero-shot and adapted, side by side
//   await engine.fewshot.list(), .export(id), .import(fileOrJson), .delete(id)   // saved per vision model (IndexedDB)

import type { ImagePayload } from "../vision/image";
import type { ClassifierFile, ClassifierSummary } from "./record";
import type { Comparison, ExampleWire, FewshotRequests, FitRequestWire, FitResult } from "./wire";

type Call = <K extends keyof FewshotRequests>(type: K, request: FewshotRequests[K]["request"]) =>
  Promise<FewshotRequests[K]["result"]>;

/** An example: an image (URL, Blob, ImageData) or an embedding the loaded model made, with its label. */
export type FewShotExample<Image> = { label: string } & ({ image: Image } | { embedding: Float32Array });

export interface FitRequest<Image> extends Omit<FitRequestWire, "examples"> {
  examples: FewShotExample<Image>[];
}

export class FewShotApi<Image> {
  constructor(private readonly call: Call, private readonly toPayload: (image: Image) => Promise<ImagePayload>) {}

  /** Fits and saves a classifier for the loaded model; returns its id, method and leave-one-out accuracy. */
  async fit(request: FitRequest<Image>): Promise<FitResult> {
    const examples: ExampleWire[] = await Promise.all(request.examples.map(async (e) =>
      "image" in e ? { label: e.label, image: await this.toPayload(e.image) } : { label: e.label, embedding: e.embedding }));
    return this.call("fewshotFit", { ...request, examples });
  }

  /** Saved classifiers (all models), newest first; `model` keeps one model's. */
  async list(model?: string): Promise<ClassifierSummary[]> {
    const all = await this.call("fewshotList", {});
    return model === undefined ? all : all.filter((c) => c.model.id === model);
  }

  /** The classifier as a JSON-ready object (JSON.stringify it to save a file). */
  export(id: string): Promise<ClassifierFile> {
    return this.call("fewshotExport", { classifier: id });
  }

  /** A file from export() (object, JSON text or Blob); checked against the loaded model and re-derived before it is saved. */
  async import(file: ClassifierFile | string | Blob): Promise<ClassifierSummary> {
    const text = file instanceof Blob ? await file.text() : file;
    let value: unknown = text;
    if (typeof text === "string") {
      try {
        value = JSON.parse(text);
      } catch {
        value = null; // the worker names the problem
      }
    }
    return this.call("fewshotImport", { file: value });
  }

  delete(id: string): Promise<null> {
    return this.call("fewshotDelete", { classifier: id });
  }

  /** Zero-shot and adapted rankings of embeddings from engine.embedImages (no image is decoded again). */
  compare(request: { classifier: string; embeddings: Float32Array[]; topK?: number }): Promise<Comparison> {
    return this.call("fewshotCompare", { classifier: request.classifier, embeddings: request.embeddings, topK: request.topK });
  }
}
