// The engine's one public face. Runs the models in a Web Worker; importable as an ES module and
// exposed on the demo page as `window.engine`.
//
//   const engine = new Engine();
//   await engine.load({ clip: "tiny-random-clip" }, { onProgress: (p) => ... });
//   engine.runtime, engine.runtimeReason          // "webgpu" | "wasm", and why
//   await engine.classify({ images, labels, template?, topK? })
//   await engine.classify({ images, labels, fudd: { k?, pairsPerClass?, onProgress? } })   // FuDD re-ranking
//   await engine.explainClass({ label, images, against? | descriptions? })   // which descriptions it prefers
//   await engine.embedImages(images), await engine.embedTexts(texts)   // normalised Float32Arrays

import { ChatCompletions, type ChatTransport, type GenerationEvent, type GenerationResult } from "./llm/chat";
import { EngineClosedError, InvalidRequestError, ModelNotLoadedError, UnsupportedImageError, reviveError } from "./errors";
import type { FuddProgress, GivenPair, PairReport } from "./fudd/describer";
import type { ClassExplanation, ExplainRequestWire, FuddClassification, FuddImage, FuddOptionsWire, RankedDescription } from "./fudd/run";
import type { ImagePayload } from "./vision/image";
import type { ModelEntry } from "./manifest.gen";
import type { ChatModelInfo } from "./llm/onnx_chat_model";
import type { ChatLoadResult, LoadOptionsWire, LoadResult, RequestType, Requests, WorkerRequest, WorkerResponse } from "./protocol";
import type { RuntimeName, RuntimeRequest } from "./runtime/runtime";
import type { PixelValues } from "./vision/preprocess";
import type { LabelScore } from "./vision/scoring";
import { cacheUsage, clearCache, deleteModel, type CacheUsage } from "./storage/cache";
import { fetchManifest, type DownloadProgress, type ProgressCallback } from "./storage/store";
import type { VisionModelInfo } from "./vision/vision_model";

export * from "./errors";
export type * from "./llm/chat";
export type { ChatLoadResult, ChatModelInfo };
export type { ClassExplanation, FuddClassification, FuddImage, FuddProgress, GivenPair, PairReport, RankedDescription };
export type { CacheUsage, DownloadProgress, LabelScore, LoadResult, ModelEntry, PixelValues, RuntimeName, VisionModelInfo };

/** What images may be: same-origin or data: URLs, Blobs/Files, or ImageData. */
export type ImageInput = string | Blob | ImageData;

export interface LoadOptions {
  onProgress?: ProgressCallback;
  /** "auto" (default): WebGPU when an adapter exists, else WASM. */
  runtime?: RuntimeRequest;
  variant?: string;
  threads?: number;
  maxBytes?: number;
  /** Chat on WASM: expand 4-bit (MatMulNBits) weights to fp32 once at load (faster decoding, 4x memory); default true. */
  expandWeights?: boolean;
}

/** What the offline model cache holds (storage panel). */
export interface StorageReport extends CacheUsage {
  /** navigator.storage.estimate(): bytes this origin uses and may use; null where unknown. */
  usage: number | null;
  quota: number | null;
  /** Whether the browser promised not to evict this origin's storage (navigator.storage.persist()). */
  persisted: boolean;
}

export interface ClassifyRequest {
  images: ImageInput[];
  labels: string[];
  /** Prompt with "{}" for the label; default: the model family's prompt. "{}" = the label as is. */
  template?: string;
  topK?: number;
  /** FuDD: re-rank each image's top K with differential descriptions from the loaded chat model (or given ones). */
  fudd?: FuddOptions;
}

export interface FuddOptions extends FuddOptionsWire {
  /** Called after each class pair is described: pairs done / total. */
  onProgress?: (p: FuddProgress) => void;
}

export interface ExplainRequest extends ExplainRequestWire {
  images: ImageInput[];
  /** Default: the model family's prompt (the baseline, and the frame around LLM descriptions). */
  template?: string;
  onProgress?: (p: FuddProgress) => void;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  onProgress?: ProgressCallback;
  onChunk?: (event: GenerationEvent) => void;
  onFuddProgress?: (p: FuddProgress) => void;
}

function dataUrlToBlob(url: string): Blob {
  const comma = url.indexOf(",");
  const header = url.slice(5, comma);
  const body = url.slice(comma + 1);
  const type = header.split(";")[0] || "application/octet-stream";
  if (!header.endsWith(";base64")) return new Blob([decodeURIComponent(body)], { type });
  const binary = atob(body);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new Blob([bytes], { type });
}

async function toPayload(image: ImageInput): Promise<ImagePayload> {
  if (image instanceof Blob) return { kind: "blob", blob: image, name: image instanceof File ? image.name : undefined };
  if (typeof ImageData !== "undefined" && image instanceof ImageData) {
    return { kind: "pixels", width: image.width, height: image.height, data: image.data.slice() };
  }
  if (typeof image !== "string") throw new UnsupportedImageError(`unsupported image input: ${String(image)}`,
    "pass a same-origin or data: URL, a Blob or File, or ImageData");
  if (image.startsWith("data:")) return { kind: "blob", blob: dataUrlToBlob(image), name: "a data: URL" };
  const url = new URL(image, location.href);
  if (url.origin !== location.origin) {
    throw new UnsupportedImageError(`${url.href} is not on this site; Lumen reads only same-origin images`,
      "download the image and pick the file instead");
  }
  const response = await fetch(url).catch(() => null);
  if (!response?.ok) throw new UnsupportedImageError(`cannot read image ${url.href} (HTTP ${response?.status ?? "error"})`);
  return { kind: "blob", blob: await response.blob(), name: url.pathname };
}

export class Engine {
  /** "webgpu" or "wasm" once a model is loaded. */
  runtime: RuntimeName | null = null;
  /** Why that runtime was taken (e.g. "no WebGPU adapter ..."). */
  runtimeReason = "";
  /** The loaded CLIP-family model. */
  model: VisionModelInfo | null = null;
  /** The loaded chat model (loadChat), with the path that runs it and why. */
  chatModel: ChatModelInfo | null = null;
  /**
   * OpenAI-style chat on the loaded chat model, generated in the worker:
   *   await engine.chat.completions.create({ messages, max_tokens, temperature, top_p, seed })
   *   for await (const chunk of await engine.chat.completions.create({ messages, stream: true })) ...
   */
  readonly chat: { completions: ChatCompletions } = {
    completions: new ChatCompletions(this.chatTransport(), (message, fix) => new InvalidRequestError(message, fix)),
  };
  /**
   * The verified offline model cache (OPFS, engine/storage/cache.ts):
   *   await engine.storage.report()            // cached models with sizes, quota
   *   await engine.storage.cacheFiles(id, paths?, onProgress?)   // download for offline use
   *   await engine.storage.deleteModel(id), await engine.storage.clear()
   */
  readonly storage = {
    report: async (): Promise<StorageReport> => {
      const [cached, estimate, persisted] = await Promise.all([
        cacheUsage(await fetchManifest()), navigator.storage.estimate(), navigator.storage.persisted(),
      ]);
      return { ...cached, usage: estimate.usage ?? null, quota: estimate.quota ?? null, persisted };
    },
    cacheFiles: async (id: string, paths?: string[], onProgress?: ProgressCallback): Promise<void> => {
      await this.call("cacheFiles", { model: id, paths }, onProgress);
    },
    deleteModel: async (id: string): Promise<void> => deleteModel(await fetchManifest(), id),
    clear: (): Promise<void> => clearCache(),
    /** Asks the browser to keep the cache under storage pressure; true when granted. */
    persist: (): Promise<boolean> => navigator.storage.persist(),
  };
  private nextChatKey = 1;

  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor() {
    this.worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module", name: "lumen-engine" });
    this.worker.onmessage = (event: MessageEvent<WorkerResponse>) => this.receive(event.data);
    this.worker.onerror = (event) => this.fail(new EngineClosedError(`the engine worker failed: ${event.message}`));
  }

  /** The models the server offers (/api/models). */
  async models(): Promise<ModelEntry[]> {
    return (await fetchManifest()).models ?? [];
  }

  async load(ids: { clip: string; llm?: string }, options: LoadOptions = {}): Promise<LoadResult> {
    const wire: LoadOptionsWire = {
      runtime: options.runtime ?? "auto", variant: options.variant, threads: options.threads, maxBytes: options.maxBytes,
    };
    const result = await this.call("load", { clip: ids.clip, options: wire }, options.onProgress);
    this.runtime = result.runtime;
    this.runtimeReason = result.runtimeReason;
    this.model = result.clip;
    if (ids.llm === undefined) return result;
    const chat = await this.loadChat(ids.llm, options);
    return { ...result, llm: chat.llm, loadMs: result.loadMs + chat.loadMs };
  }

  /** Loads a chat model (task text-generation): WebLLM when its MLC library and WebGPU allow, else onnxruntime-web. */
  async loadChat(id: string, options: LoadOptions = {}): Promise<ChatLoadResult> {
    const wire: LoadOptionsWire = {
      runtime: options.runtime ?? "auto", variant: options.variant, threads: options.threads, maxBytes: options.maxBytes,
    };
    wire.expandWeights = options.expandWeights;
    const result = await this.call("loadChat", { llm: id, options: wire }, options.onProgress);
    this.runtime = result.runtime;
    this.runtimeReason = result.runtimeReason;
    this.chatModel = result.llm;
    return result;
  }

  async embedImages(images: ImageInput[]): Promise<Float32Array[]> {
    return this.call("embedImages", { images: await Promise.all(images.map(toPayload)) });
  }

  /** pixel_values [3, H, W] per image, exactly as the model's image processor makes them (for checks). */
  async pixelValues(images: ImageInput[]): Promise<PixelValues[]> {
    return this.call("pixelValues", { images: await Promise.all(images.map(toPayload)) });
  }

  async embedTexts(texts: string[]): Promise<Float32Array[]> {
    return this.call("embedTexts", { texts });
  }

  /**
   * Per image, the labels ranked by score (softmax for CLIP/ALIGN, sigmoid for SigLIP). With `fudd`: also
   * each image's top K re-ranked with differential descriptions, the descriptions, and how each class
   * pair was described (LLM, cache or given; fallbacks to the template counted).
   */
  classify(request: ClassifyRequest & { fudd: FuddOptions }): Promise<FuddClassification>;
  classify(request: ClassifyRequest & { fudd?: undefined }): Promise<LabelScore[][]>;
  classify(request: ClassifyRequest): Promise<LabelScore[][] | FuddClassification>;
  async classify(request: ClassifyRequest): Promise<LabelScore[][] | FuddClassification> {
    const images = await Promise.all(request.images.map(toPayload));
    const { onProgress, ...fudd } = request.fudd ?? {};
    return this.call("classify", { images, labels: request.labels, template: request.template, topK: request.topK,
      fudd: request.fudd && fudd }, undefined, undefined, onProgress);
  }

  /** A class's descriptions (given, or written by the chat model against `against`) ranked by similarity to the images. */
  async explainClass(request: ExplainRequest): Promise<ClassExplanation> {
    const { images, onProgress, ...rest } = request;
    return this.call("explainClass", { ...rest, images: await Promise.all(images.map(toPayload)) }, undefined, undefined,
      onProgress);
  }

  /** Releases the models and stops the worker. */
  async dispose(): Promise<void> {
    if (this.closed) return;
    await this.call("dispose", {}).catch(() => undefined);
    this.worker.terminate();
    this.fail(new EngineClosedError("the engine was disposed"));
  }

  /** The worker side of chat.completions: a "chat" request per generation, "chatAbort" to stop it. */
  private chatTransport(): ChatTransport {
    return {
      modelId: () => {
        if (!this.chatModel) throw new ModelNotLoadedError("no chat model is loaded", "call engine.loadChat(id) first");
        return this.chatModel.id;
      },
      generate: (params, onEvent) => {
        const key = this.nextChatKey++;
        let aborted = false;
        const result = this.call("chat", { key, params }, undefined, onEvent).then((r: GenerationResult) => {
          if (aborted) throw new DOMException("the chat request was aborted", "AbortError");
          return r;
        });
        const abort = () => {
          if (aborted || this.closed) return;
          aborted = true;
          void this.call("chatAbort", { key });
        };
        return { result, abort };
      },
    };
  }

  private call<K extends RequestType>(type: K, request: Requests[K]["request"], onProgress?: ProgressCallback,
    onChunk?: (event: GenerationEvent) => void, onFuddProgress?: (p: FuddProgress) => void): Promise<Requests[K]["result"]> {
    if (this.closed) return Promise.reject(new EngineClosedError("the engine was disposed"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, onProgress, onChunk, onFuddProgress });
      this.worker.postMessage({ id, type, ...request } as WorkerRequest);
    });
  }

  private receive(msg: WorkerResponse): void {
    const pending = this.pending.get(msg.id);
    if (!pending) return;
    if (msg.kind === "progress") {
      pending.onProgress?.(msg.progress as DownloadProgress);
      return;
    }
    if (msg.kind === "chunk") {
      pending.onChunk?.(msg.event);
      return;
    }
    if (msg.kind === "fuddProgress") {
      pending.onFuddProgress?.(msg.progress);
      return;
    }
    this.pending.delete(msg.id);
    if (msg.kind === "result") pending.resolve(msg.result);
    else pending.reject(reviveError(msg.error));
  }

  private fail(err: Error): void {
    this.closed = true;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
