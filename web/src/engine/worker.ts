// The engine's Web Worker: owns onnxruntime-web and the loaded models, answers protocol.ts
// requests one at a time in arrival order. The LLM engine adds its cases to the switch.

/// <reference lib="webworker" />
import { ModelNotFoundError, ModelNotLoadedError, serializeError } from "./errors";
import { OnnxChatModel, type ChatModel } from "./llm";
import promptText from "../../../contract/fudd_prompt.json?raw";
import { FuddPrompt } from "./fudd";
import { checkExplainRequest, checkFuddOptions, classifyWithFudd, explainClass, makeDescriber } from "./fudd_run";
import { decodeImage, type ImagePayload } from "./image";
import type { ChatLoadResult, LoadResult, Requests, WorkerRequest, WorkerResponse } from "./protocol";
import { chooseRuntime, findAdapter, isSoftwareAdapter, startRuntime, type Runtime } from "./runtime";
import { applyTemplate, scoreLabels } from "./scoring";
import { cacheFiles, fetchManifest, fileEntry, findModel, type DownloadProgress } from "./store";
import { VisionModel } from "./vision";
import { planChatPath, WebLlmChatModel } from "./webllm";

declare const self: DedicatedWorkerGlobalScope;

let runtime: Runtime | null = null;
let clip: VisionModel | null = null;
let chat: ChatModel | null = null;
/** FuDD's prompt and parsing rules: the same file reference/fudd_prompt.py reads. */
const fuddPrompt = new FuddPrompt(JSON.parse(promptText));
/** Keys of chat requests the page asked to stop (see chatAbort). */
const stoppedChats = new Set<number>();

function post(message: WorkerResponse, transfer: Transferable[] = []): void {
  self.postMessage(message, transfer);
}

function loaded(): VisionModel {
  if (!clip) throw new ModelNotLoadedError("no CLIP-family model is loaded", "call engine.load({clip: id}) first");
  return clip;
}

async function decodeAll(images: ImagePayload[]) {
  const out = [];
  for (const image of images) out.push(await decodeImage(image)); // one at a time: bounded memory
  return out;
}

async function load(msg: Extract<WorkerRequest, { type: "load" }>): Promise<LoadResult> {
  const start = performance.now();
  // The runtime is chosen once per worker: onnxruntime-web's settings are global to it.
  runtime ??= await startRuntime(await chooseRuntime(msg.options.runtime, msg.options.threads));
  const entry = findModel(await fetchManifest(), msg.clip);
  const model = await VisionModel.load(entry, runtime, {
    variant: msg.options.variant,
    maxBytes: msg.options.maxBytes,
    onProgress: (progress) => post({ id: msg.id, kind: "progress", progress }),
  });
  await clip?.dispose();
  clip = model;
  return { runtime: runtime.name, runtimeReason: runtime.reason, threads: runtime.threads, clip: model.info,
    loadMs: performance.now() - start };
}

async function loadChat(msg: Extract<WorkerRequest, { type: "loadChat" }>): Promise<ChatLoadResult> {
  const start = performance.now();
  runtime ??= await startRuntime(await chooseRuntime(msg.options.runtime, msg.options.threads));
  const entry = findModel(await fetchManifest(), msg.llm);
  if (!entry.llm) throw new ModelNotFoundError(`${entry.id} is not a chat model (task ${entry.task})`);
  const { adapter, why } = await findAdapter();
  // On "auto", a software adapter counts as a WASM request: WebLLM on SwiftShader is far slower.
  const wantWasm = msg.options.runtime === "wasm" || (msg.options.runtime !== "webgpu" && !!adapter && isSoftwareAdapter(adapter));
  const plan = planChatPath(entry.llm, adapter, why, wantWasm);
  const onProgress = (progress: DownloadProgress) => post({ id: msg.id, kind: "progress", progress });
  let model: ChatModel | null = null;
  let reason = plan.reason;
  if (plan.path === "webllm") {
    model = await WebLlmChatModel.load(entry, plan.build, plan.reason, onProgress).catch((err: unknown) => {
      reason = `WebLLM failed to start (${String(err)}), so onnxruntime-web runs it`;
      return null;
    });
  }
  model ??= await OnnxChatModel.load(entry, runtime, reason,
    { variant: msg.options.variant, maxBytes: msg.options.maxBytes, expandWeights: msg.options.expandWeights, onProgress });
  await chat?.dispose();
  chat = model;
  return { runtime: runtime.name, runtimeReason: runtime.reason, threads: runtime.threads, llm: model.info,
    loadMs: performance.now() - start };
}

async function generate(msg: Extract<WorkerRequest, { type: "chat" }>) {
  if (!chat) throw new ModelNotLoadedError("no chat model is loaded", "call engine.loadChat(id) first");
  try {
    return await chat.generate(msg.params, (event) => post({ id: msg.id, kind: "chunk", event }),
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
      const vision = model.info.vision;
      const template = msg.template ?? vision.template;
      if (msg.fudd) checkFuddOptions(msg.fudd);
      // Before any embedding, so a missing chat model fails fast.
      const writer = msg.fudd && await makeDescriber(fuddPrompt, chat, template, msg.fudd.descriptions, msg.fudd.pairsPerClass);
      const texts = await model.embedTexts(msg.labels.map((l) => applyTemplate(template, l)));
      const images = await model.embedImages(await decodeAll(msg.images));
      if (!msg.fudd || !writer) return images.map((img) => scoreLabels(img, texts, msg.labels, vision, msg.topK));
      return classifyWithFudd(images, texts, msg.labels, { ...vision, template }, msg.fudd, writer,
        (t) => model.embedTexts(t), msg.topK, (progress) => post({ id: msg.id, kind: "fuddProgress", progress }));
    }
    case "explainClass": {
      const model = loaded();
      const template = msg.template ?? model.info.vision.template;
      checkExplainRequest(msg, msg.images.length);
      const images = await model.embedImages(await decodeAll(msg.images));
      // Only `against` asks the chat model; descriptions given alone need none (an empty given set).
      const asksLlm = Boolean(msg.against?.length);
      const writer = await makeDescriber(fuddPrompt, asksLlm ? chat : null, template, asksLlm ? undefined : [],
        msg.pairsPerClass);
      return explainClass(msg, images, template, writer, (t) => model.embedTexts(t),
        (progress) => post({ id: msg.id, kind: "fuddProgress", progress }));
    }
    case "dispose":
      await clip?.dispose();
      await chat?.dispose();
      clip = null;
      chat = null;
      return null;
    case "loadChat":
      return loadChat(msg);
    case "chat":
      return generate(msg);
    case "chatAbort":
      return null; // answered in onmessage, ahead of the queue
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
