// The worker's few-shot requests: fit (embed labels and example images with the loaded model, choose
// and fit a classifier, save it), list / export / import / delete saved classifiers, and scoring
// with one (engine.classify({..., classifier}) and fewshotCompare).

import { InvalidRequestError } from "../errors";
import type { ImagePayload } from "../vision/image";
import type { RgbImage } from "../vision/resample";
import { applyTemplate, scoreLabels, type LabelScore } from "../vision/scoring";
import type { VisionModel } from "../vision/vision_model";
import { classifierLogits, fit, type FittedClassifier } from "./fit";
import { softmaxRows } from "./matrix";
import { checkFile, summarize, toFile, toFitted, type ClassifierFile, type ClassifierSummary } from "./record";
import { deleteClassifier, getClassifier, listClassifiers, saveClassifier } from "./store";
import type { Comparison, FewshotRequests, FitRequestWire, FitResult } from "./wire";

type Decode = (images: ImagePayload[]) => Promise<RgbImage[]>;
export type FewshotWorkerRequest = { [K in keyof FewshotRequests]: { id: number; type: K } & FewshotRequests[K]["request"] }[keyof FewshotRequests];

async function saved(id: string, model: VisionModel): Promise<ClassifierFile> {
  const file = await getClassifier(id);
  if (!file) throw new InvalidRequestError(`no saved few-shot classifier ${id}`, "list them with engine.fewshot.list()");
  if (file.model.id !== model.info.id || file.model.revision !== model.info.revision) {
    throw new InvalidRequestError(`classifier "${file.name}" was trained on ${file.model.id}; the loaded model is ${model.info.id}`,
      `load ${file.model.id} first`);
  }
  return file;
}

async function fitAndSave(req: FitRequestWire, model: VisionModel, decode: Decode): Promise<FitResult> {
  const labels = req.labels.map((l) => l.trim());
  if (new Set(labels).size !== labels.length || labels.some((l) => !l)) {
    throw new InvalidRequestError("labels must be distinct and non-empty", "remove empty or repeated labels");
  }
  const unknown = req.examples.find((e) => !labels.includes(e.label.trim()));
  if (unknown) throw new InvalidRequestError(`example label "${unknown.label}" is not one of the labels`, "add it to the labels");
  const template = req.template ?? model.info.vision.template;
  const text = await model.embedTexts(labels.map((l) => applyTemplate(template, l)));
  const toEmbed = req.examples.flatMap((e) => ("image" in e ? [e.image] : []));
  const embedded = await model.embedImages(await decode(toEmbed));
  let next = 0;
  const examples = req.examples.map((e) => ("image" in e ? embedded[next++]! : e.embedding));
  const seed = req.seed ?? 0;
  const start = performance.now();
  const fitted = fit({ text, scale: model.info.vision.logit_scale, examples, labels: req.examples.map((e) => labels.indexOf(e.label.trim())),
    method: req.method, seed });
  const fitMs = performance.now() - start;
  const file = toFile(fitted, {
    id: req.replace ?? crypto.randomUUID(), name: req.name ?? labels.join(" / "), labels, template, seed,
    model: { id: model.info.id, revision: model.info.revision, variant: model.info.variant },
  });
  await saveClassifier(file);
  return { ...summarize(file), candidates: fitted.candidates, fitMs };
}

/** Adapted rankings (softmax over the classifier's labels) of unit image embeddings, best first. */
export function adaptedScores(file: ClassifierFile, classifier: FittedClassifier, embeddings: Float32Array[],
  topK?: number): LabelScore[][] {
  const logits = classifierLogits(classifier, embeddings); // [m, C]
  const probs = softmaxRows(logits);
  return embeddings.map((_, i) => {
    const row = file.labels.map((label, c) => ({ label, score: probs.data[i * logits.cols + c]!, logit: logits.data[i * logits.cols + c]! }))
      .sort((a, b) => b.score - a.score);
    return topK === undefined ? row : row.slice(0, topK);
  });
}

export async function classifyWithClassifier(id: string, labels: string[], model: VisionModel, images: RgbImage[],
  topK?: number): Promise<LabelScore[][]> {
  const file = await saved(id, model);
  if (labels.length && (labels.length !== file.labels.length || labels.some((l) => !file.labels.includes(l.trim())))) {
    throw new InvalidRequestError(`classifier "${file.name}" knows the labels ${file.labels.join(", ")}, not ${labels.join(", ")}`,
      "pass its labels (or none), or fit a classifier for these labels");
  }
  return adaptedScores(file, toFitted(file), await model.embedImages(images), topK);
}

export async function handleFewshot(msg: FewshotWorkerRequest, model: () => VisionModel, decode: Decode):
  Promise<FewshotRequests[keyof FewshotRequests]["result"]> {
  switch (msg.type) {
    case "fewshotFit":
      return fitAndSave(msg, model(), decode);
    case "fewshotList":
      return (await listClassifiers()).map(summarize);
    case "fewshotExport": {
      const file = await getClassifier(msg.classifier);
      if (!file) throw new InvalidRequestError(`no saved few-shot classifier ${msg.classifier}`, "list them with engine.fewshot.list()");
      return file;
    }
    case "fewshotImport": {
      const m = model();
      const file = checkFile(msg.file, { id: m.info.id, embedDim: m.info.vision.embed_dim });
      await saveClassifier(file);
      return summarize(file) satisfies ClassifierSummary;
    }
    case "fewshotDelete":
      await deleteClassifier(msg.classifier);
      return null;
    case "fewshotCompare": {
      const m = model();
      const file = await saved(msg.classifier, m);
      const zeroShot = msg.embeddings.map((e) => scoreLabels(e, file.text.map((r) => Float32Array.from(r)), file.labels,
        m.info.vision, msg.topK));
      return { zeroShot, adapted: adaptedScores(file, toFitted(file), msg.embeddings, msg.topK) } satisfies Comparison;
    }
  }
}
