// The engine's Web Worker: owns onnxruntime-web and the loaded models, answers protocol.ts
// requests one at a time in arrival order. The LLM engine adds its cases to the switch.

/// <reference lib="webworker" />
import { InvalidRequestError, ModelNotFoundError, ModelNotLoadedError, serializeError } from "./errors";
import { OnnxLlmModel, type LlmModel } from "./llm/onnx_chat_model";
import promptText from "../../../contract/fudd_prompt.json?raw";
import { FuddPrompt } from "./fudd/fudd";
import { checkExplainRequest, checkFuddOptions, classifyWithFudd, explainClass, makeDescriber, memoized } from "./fudd/run";
import { classifyWithClassifier, handleFewshot } from "./fewshot/worker_side";
import { decodeImage, type ImagePayload } from "./vision/image";
import type { LlmLoadResult, LoadResult, Requests, WorkerRequest, WorkerResponse } from "./protocol";
import { chooseRuntime, findAdapter, isSoftwareAdapter, startRuntime, type Runtime, type RuntimeRequest } from "./runtime/runtime";
import { applyTemplate, scoreLabels } from "./vision/scoring";
import { cacheFiles, fetchManifest, fileEntry, findModel, type DownloadProgress } from "./storage/store";
import { VisionModel } from "./vision/vision_model";
import { disposeSpeech, loadSpeech, speechModel } from "./speech/worker_speech";
import { planChatPath, WebLlmModel } from "./llm/webllm";


declare const self: DedicatedWorkerGlobalScope;

let runtime: Runtime | null = null;
let vision: VisionModel | null = null;
let llm: LlmModel | null = null;
/** FuDD's prompt and parsing rules: the same file reference/fudd_prompt.py reads. */
const fuddPrompt = new FuddPrompt(JSON.parse(promptText));
/** Keys of chat requests the page asked to stop (see chatAbort). */
const stoppedChats = new Set<number>();

function post(message: WorkerResponse, transfer: Transferable[] = []): void {
  self.postMessage(message, transfer);
}

function loaded(): VisionModel {
  if (!vision) throw new ModelNotLoadedError("no vision model is loaded", "call engine.load({ vision: id }) first");
  return vision;
}

async function decodeAll(images: ImagePayload[]) {
  const out = [];
  for (const image of images) out.push(await decodeImage(image)); // one at a time: bounded memory
  return out;
}

async function ensureRuntime(options: { runtime: RuntimeRequest; threads?: number }): Promise<Runtime> {
  runtime ??= await startRuntime(await chooseRuntime(options.runtime, options.threads));
  return runtime;
}

async function load(msg: Extract<WorkerRequest, { type: "load" }>): Promise<LoadResult> {
  const start = performance.now();
  // The runtime is chosen once per worker: onnxruntime-web's settings are global to it.
  const runtime = await ensureRuntime(msg.options);
  const entry = findModel(await fetchManifest(), msg.vision);
  const model = await VisionModel.load(entry, runtime, {
    variant: msg.options.variant,
    maxBytes: msg.options.maxBytes,
    expandWeights: msg.options.expandWeights,
    onProgress: (progress) => post({ id: msg.id, kind: "progress", progress }),
  });
  await vision?.dispose();
  vision = model;
  return { runtime: runtime.name, runtimeReason: runtime.reason, threads: runtime.threads, vision: model.info, clip: model.info,
    loadMs: performance.now() - start };
}

async function loadLlm(msg: Extract<WorkerRequest, { type: "loadLlm" }>): Promise<LlmLoadResult> {
  const start = performance.now();
  const runtime = await ensureRuntime(msg.options);
  const entry = findModel(await fetchManifest(), msg.llm);
  if (!entry.llm) throw new ModelNotFoundError(`${entry.id} is not an LLM (task ${entry.task})`);
  const { adapter, why } = await findAdapter();
  // On "auto", a software adapter counts as a WASM request: WebLLM on SwiftShader is far slower.
  const wantWasm = msg.options.runtime === "wasm" || (msg.options.runtime !== "webgpu" && !!adapter && isSoftwareAdapter(adapter));
  const plan = planChatPath(entry.llm, adapter, why, wantWasm);
  const onProgress = (progress: DownloadProgress) => post({ id: msg.id, kind: "progress", progress });
  let model: LlmModel | null = null;
  let reason = plan.reason;
  if (plan.path === "webllm") {
    model = await WebLlmModel.load(entry, plan.build, plan.reason, onProgress).catch((err: unknown) => {
      reason = `WebLLM failed to start (${String(err)}), so onnxruntime-web runs it`;
      return null;
    });
  }
  model ??= await OnnxLlmModel.load(entry, runtime, reason,
    { variant: msg.options.variant, maxBytes: msg.options.maxBytes, expandWeights: msg.options.expandWeights, onProgress });
  await llm?.dispose();
  llm = model;
  return { runtime: runtime.name, runtimeReason: runtime.reason, threads: runtime.threads, llm: model.info,
    loadMs: performance.now() - start };
}

async function generate(msg: Extract<WorkerRequest, { type: "chat" }>) {
  if (!llm) throw new ModelNotLoadedError("no LLM is loaded", "call engine.loadLlm(id) first");
  try {
    return await llm.generate(msg.params, (event) => post({ id: msg.id, kind: "chunk", event }),
      () => stoppedChats.has(msg.key));
  } finally {
    stoppedChats.delete(msg.key);
  }
}

async function handle(msg: WorkerRequest): Promise<Requests[WorkerRequest["type"]]["result"]> {
  switch (msg.type) {
    case "load":
      return load(msg);
    case "embedImages":
      return loaded().embedImages(await decodeAll(msg.images));
    case "pixelValues":
      return loaded().pixelValues(await decodeAll(msg.images));
    case "embedTexts":
      return loaded().embedTexts(msg.texts);
    case "classify": {
      const model = loaded();
      if (msg.classifier && msg.fudd) {
        throw new InvalidRequestError("classify takes a few-shot classifier or FuDD, not both", "drop one of the two options");
      }
      if (msg.classifier) return classifyWithClassifier(msg.classifier, msg.labels, model, await decodeAll(msg.images), msg.topK);
      const vision = model.info.vision;
      const template = msg.template ?? vision.template;
      if (msg.fudd) checkFuddOptions(msg.fudd);
      const embed = memoized((t) => model.embedTexts(t));
      // Before any embedding, so a missing LLM fails fast.
      const writer = msg.fudd && await makeDescriber(fuddPrompt, llm, template, { given: msg.fudd.descriptions,
        pairsPerClass: msg.fudd.pairsPerClass, structured: msg.fudd.structured,
        separationEmbedder: msg.fudd.separationCheck === false ? null : embed });
      const texts = await embed(msg.labels.map((l) => applyTemplate(template, l)));
      const images = await model.embedImages(await decodeAll(msg.images));
      if (!msg.fudd || !writer) return images.map((img) => scoreLabels(img, texts, msg.labels, vision, msg.topK));
      return classifyWithFudd(images, texts, msg.labels, { ...vision, template }, msg.fudd, writer,
        embed, msg.topK, (progress) => post({ id: msg.id, kind: "fuddProgress", progress }));
    }
    case "explainClass": {
      const model = loaded();
      const template = msg.template ?? model.info.vision.template;
      checkExplainRequest(msg, msg.images.length);
      const images = await model.embedImages(await decodeAll(msg.images));
      // Only `against` asks the LLM; descriptions given alone need none (an empty given set).
      const asksLlm = Boolean(msg.against?.length);
      const embed = memoized((t) => model.embedTexts(t));
      const writer = await makeDescriber(fuddPrompt, asksLlm ? llm : null, template, { given: asksLlm ? undefined : [],
        pairsPerClass: msg.pairsPerClass, separationEmbedder: msg.separationCheck === false ? null : embed });
      return explainClass(msg, images, template, writer, embed,
        (progress) => post({ id: msg.id, kind: "fuddProgress", progress }));
    }
    case "dispose":
      await vision?.dispose();
      await llm?.dispose();
      vision = null;
      llm = null;
      await disposeSpeech();
      return null;
    case "loadLlm":
      return loadLlm(msg);
    case "chat":
      return generate(msg);
    case "chatAbort":
      return null; // answered in onmessage, ahead of the queue
    case "loadSpeech":
      return loadSpeech(msg, await ensureRuntime(msg.options), (progress) => post({ id: msg.id, kind: "progress", progress }));
    case "transcribe":
      return speechModel().transcribe(msg.samples, (progress) => post({ id: msg.id, kind: "speechProgress", progress }));
    case "speechFeatures":
      return speechModel().features(msg.samples);
    case "fewshotFit":
    case "fewshotList":
    case "fewshotExport":
    case "fewshotImport":
    case "fewshotDelete":
    case "fewshotCompare":
      return handleFewshot(msg, loaded, decodeAll);
    case "cacheFiles": {
      const entry = findModel(await fetchManifest(), msg.model);
      const files = msg.paths ? msg.paths.map((p) => fileEntry(entry, p)) : entry.files;
      await cacheFiles(files, (progress) => post({ id: msg.id, kind: "progress", progress }));
      return null;
    }
  }
}

/** The Float32Array buffers of a result, moved rather than copied to the main thread. */
function transferables(result: unknown): Transferable[] {
  if (!Array.isArray(result)) return [];
  return result.flatMap((r: unknown) => {
    if (r instanceof Float32Array) return [r.buffer as ArrayBuffer];
    if (r && typeof r === "object" && "data" in r && r.data instanceof Float32Array) return [r.data.buffer as ArrayBuffer];
    return [];
  });
}

// Requests run strictly in order, so a classify after a load sees the loaded model.
let queue: Promise<void> = Promise.resolve();
self.onmessage = (event: MessageEvent<WorkerRequest>) => {
  const msg = event.data;
  if (msg.type === "chatAbort") {
    // Not queued: the chat it stops is the request running now (it polls between decode steps).
    stoppedChats.add(msg.key);
    post({ id: msg.id, kind: "result", result: null });
    return;
  }
  queue = queue.then(async () => {
    try {
      const result = await handle(msg);
      post({ id: msg.id, kind: "result", result }, transferables(result));
    } catch (err) {
      post({ id: msg.id, kind: "error", error: serializeError(err) });
    }
  });
};
