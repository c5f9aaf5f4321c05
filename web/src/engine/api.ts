// The engine's one public face. Runs the models in a Web Worker; importable as an ES module and
// exposed on the demo page as `window.engine`.
//
//   const engine = new Engine();
//   await engine.load({ vision: "tiny-random-clip", llm?: "smollm2" }, { onProgress: (p) => ... });
//   await engine.loadLlm("smollm2"); await engine.chat.completions.create({ messages })
//   engine.vision, engine.llm                     // what is loaded (VisionModelInfo, LlmModelInfo)
//   engine.runtime, engine.runtimeReason          // "webgpu" | "wasm", and why
//   await engine.classify({ images, labels, template?, topK? })
//   await engine.classify({ images, labels, fudd: { k?, pairsPerClass?, structured?, separationCheck?, onProgress? } })   // FuDD
//   await engine.explainClass({ label, images, against? | descriptions? })   // which descriptions it prefers, and which separate
//   await engine.embedImages(images), await engine.embedTexts(texts)   // normalised Float32Arrays
//   await engine.loadSpeech("whisper-tiny.en"); await engine.transcribe({ audio })   // Blob | Float32Array | MediaStream

import { ChatCompletions, type ChatTransport, type GenerationEvent, type GenerationResult } from "./llm/chat";
import { EngineClosedError, InvalidRequestError, ModelNotLoadedError, UnsupportedImageError, reviveError } from "./errors";
import type { FuddProgress, GivenPair, PairOutcome } from "./fudd/describer";
import type { ClassExplanation, ExplainRequestWire, FuddClassification, FuddImage, FuddOptionsWire, RankedDescription } from "./fudd/run";
import type { ImagePayload } from "./vision/image";
import { FewShotApi } from "./fewshot/api";
import type { ModelEntry } from "./manifest.gen";
import type { LlmModelInfo } from "./llm/onnx_chat_model";
import type { LlmLoadResult, LoadOptionsWire, LoadResult, RequestType, Requests, WorkerRequest, WorkerResponse } from "./protocol";
import type { RuntimeName, RuntimeRequest } from "./runtime/runtime";
import type { PixelValues } from "./vision/preprocess";
import type { LabelScore } from "./vision/scoring";
import { cacheUsage, clearCache, completeFiles, deleteModel, type CacheUsage } from "./storage/cache";
import { answerCacheUsage, clearAnswerCache, type AnswerCacheUsage } from "./fudd/cache";
import { defaultDownload } from "./runtime/model_files";
import { fetchManifest, type DownloadProgress, type ProgressCallback } from "./storage/store";
import type { VisionModelInfo } from "./vision/vision_model";
import { checkClassifyRequest, checkImages, checkStrings } from "./validate";
import { type AudioInput, type RecordOptions, toSamples } from "./speech/audio";
import type { LogMel } from "./speech/mel";
import type { SpeechModelInfo, TranscribeProgress, Transcription } from "./speech/whisper";
import type { SpeechLoadResult } from "./protocol";

export * from "./errors";
export type { FewShotExample, FitRequest } from "./fewshot/api";
export type { ClassifierFile, ClassifierSummary } from "./fewshot/record";
export type { Comparison, FitResult } from "./fewshot/wire";
export type * from "./llm/chat";
export type { LlmLoadResult, LlmModelInfo };
export type { AudioInput, LogMel, SpeechLoadResult, SpeechModelInfo, TranscribeProgress, Transcription };
export type { ClassExplanation, FuddClassification, FuddImage, FuddProgress, GivenPair, PairOutcome, RankedDescription };
/** @deprecated old names: LlmModelInfo, LlmLoadResult, PairOutcome. */
export type { LlmModelInfo as ChatModelInfo, LlmLoadResult as ChatLoadResult, PairOutcome as PairReport };
export type { AnswerCacheUsage, CacheUsage, DownloadProgress, LabelScore, LoadResult, ModelEntry, PixelValues, RuntimeName, VisionModelInfo };

/** What images may be: same-origin or data: URLs, Blobs/Files, or ImageData. */
export type ImageInput = string | Blob | ImageData;

export interface LoadOptions {
  onProgress?: ProgressCallback;
  /** "auto" (default): WebGPU when an adapter exists, else WASM. */
  runtime?: RuntimeRequest;
  variant?: string;
  threads?: number;
  maxBytes?: number;
  /**
   * Expand quantized weights to fp32 once at load (faster on WASM, 4 bytes a weight in memory).
   * Default: chat on WASM true; vision as the manifest's variant records (expand_weights) for the runtime.
   */
  expandWeights?: boolean;
}

/** What the offline model cache holds (storage panel). */
export interface StorageReport extends CacheUsage {
  /** navigator.storage.estimate(): bytes this origin uses and may use; null where unknown. */
  usage: number | null;
  quota: number | null;
  /** Whether the browser promised not to evict this origin's storage (navigator.storage.persist()). */
  persisted: boolean;
  /** FuDD's saved LLM answers (IndexedDB "lumen-fudd"). */
  descriptions: AnswerCacheUsage;
}

/** A model's default download on one runtime (model pickers): its size and how much of it is cached. */
export interface ModelDownload {
  id: string;
  variant: string;
  /** The manifest's bytes of the files loading it downloads (runtime/model_files.ts defaultDownload). */
  bytes: number;
  /** Of those, the bytes already complete in the offline cache. */
  cachedBytes: number;
}

export interface ClassifyRequest {
  images: ImageInput[];
  labels: string[];
  /** Prompt with "{}" for the label; default: the model family's prompt. "{}" = the label as is. */
  template?: string;
  topK?: number;
  /** FuDD: re-rank each image's top K with differential descriptions from the loaded chat model (or given ones). */
  fudd?: FuddOptions;
  /** A saved few-shot classifier (engine.fewshot.fit): adapted scores over its labels instead of zero-shot. */
  classifier?: string;
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

export interface TranscribeRequest extends RecordOptions {
  /** A Blob/File (decoded by the browser), mono Float32Array at 16 kHz, or a MediaStream to record. */
  audio: AudioInput;
  /** Only "en": the exported models are English-only (default "en"). */
  language?: string;
  /** Per 30 s window while it works. */
  onProgress?: (p: TranscribeProgress) => void;
}

/** What a request's progress messages go to, by kind. */
interface Handlers {
  onProgress?: ProgressCallback;
  onChunk?: (event: GenerationEvent) => void;
  onFuddProgress?: (p: FuddProgress) => void;
  onSpeechProgress?: (p: TranscribeProgress) => void;
}

interface Pending extends Handlers {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
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
  /** The loaded vision model (CLIP, SigLIP or ALIGN). */
  vision: VisionModelInfo | null = null;
  /** The loaded LLM (loadLlm), with the path that runs it and why. */
  llm: LlmModelInfo | null = null;
  /** The loaded speech model (loadSpeech). */
  speech: SpeechModelInfo | null = null;
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
   *   await engine.storage.downloads(runtime)   // per model: default download size, bytes cached
   *   await engine.storage.clearDescriptions()  // FuDD's saved LLM answers
   */
  readonly storage = {
    report: async (): Promise<StorageReport> => {
      const [cached, estimate, persisted, descriptions] = await Promise.all([
        cacheUsage(await fetchManifest()), navigator.storage.estimate(), navigator.storage.persisted(),
        answerCacheUsage(),
      ]);
      return { ...cached, usage: estimate.usage ?? null, quota: estimate.quota ?? null, persisted, descriptions };
    },
    /** Per model of the manifest: what loading it on `runtime` downloads, and how much of that is cached. */
    downloads: async (runtime: RuntimeName): Promise<ModelDownload[]> => {
      const [manifest, complete] = await Promise.all([fetchManifest(), completeFiles()]);
      return (manifest.models ?? []).map((m) => {
        const { variant, files } = defaultDownload(m, runtime);
        const bytes = (list: typeof files) => list.reduce((s, f) => s + f.bytes, 0);
        return { id: m.id, variant, bytes: bytes(files), cachedBytes: bytes(files.filter((f) => complete.get(f.sha256) === f.bytes)) };
      });
    },
    cacheFiles: async (id: string, paths?: string[], onProgress?: ProgressCallback): Promise<void> => {
      await this.call("cacheFiles", { model: id, paths }, { onProgress });
    },
    deleteModel: async (id: string): Promise<void> => deleteModel(await fetchManifest(), id),
    clear: (): Promise<void> => clearCache(),
    /** Forgets FuDD's saved LLM answers ("Ask the LLM" then asks again). */
    clearDescriptions: (): Promise<void> => clearAnswerCache(),
    /** Asks the browser to keep the cache under storage pressure; true when granted. */
    persist: (): Promise<boolean> => navigator.storage.persist(),
  };
  /** Few-shot adaptation with the image tower locked (fewshot/api.ts, docs/fewshot.md). */
  readonly fewshot = new FewShotApi<ImageInput>((type, request) => this.call(type, request), toPayload);
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

  /** @deprecated the old name of `vision`. */
  get model(): VisionModelInfo | null {
    return this.vision;
  }

  /** @deprecated the old name of `llm`. */
  get chatModel(): LlmModelInfo | null {
    return this.llm;
  }

  /** Loads a vision model and, with `llm`, an LLM too. `clip` is the deprecated name of `vision`. */
  async load(ids: { vision?: string; clip?: string; llm?: string }, options: LoadOptions = {}): Promise<LoadResult> {
    const vision = ids.vision ?? ids.clip;
    if (vision === undefined) throw new InvalidRequestError("load() needs a vision model id", "call engine.load({ vision: id })");
    const wire: LoadOptionsWire = {
      runtime: options.runtime ?? "auto", variant: options.variant, threads: options.threads, maxBytes: options.maxBytes,
      expandWeights: options.expandWeights,
    };
    const result = await this.call("load", { vision, options: wire }, { onProgress: options.onProgress });
    this.runtime = result.runtime;
    this.runtimeReason = result.runtimeReason;
    this.vision = result.vision;
    if (ids.llm === undefined) return result;
    const llm = await this.loadLlm(ids.llm, options);
    return { ...result, llm: llm.llm, loadMs: result.loadMs + llm.loadMs };
  }

  /** @deprecated the old name of `loadLlm`. */
  loadChat(id: string, options: LoadOptions = {}): Promise<LlmLoadResult> {
    return this.loadLlm(id, options);
  }

  /** Loads an LLM (task text-generation): WebLLM when its MLC library and WebGPU allow, else onnxruntime-web. */
  async loadLlm(id: string, options: LoadOptions = {}): Promise<LlmLoadResult> {
    const wire: LoadOptionsWire = {
      runtime: options.runtime ?? "auto", variant: options.variant, threads: options.threads, maxBytes: options.maxBytes,
    };
    wire.expandWeights = options.expandWeights;
    const result = await this.call("loadLlm", { llm: id, options: wire }, { onProgress: options.onProgress });
    this.runtime = result.runtime;
    this.runtimeReason = result.runtimeReason;
    this.llm = result.llm;
    return result;
  }

  /** Loads a speech model (task automatic-speech-recognition, e.g. whisper-tiny.en). */
  async loadSpeech(id: string, options: LoadOptions = {}): Promise<SpeechLoadResult> {
    const wire: LoadOptionsWire = {
      runtime: options.runtime ?? "auto", variant: options.variant, threads: options.threads, maxBytes: options.maxBytes,
    };
    const result = await this.call("loadSpeech", { speech: id, options: wire }, { onProgress: options.onProgress });
    this.runtime = result.runtime;
    this.runtimeReason = result.runtimeReason;
    this.speech = result.speech;
    return result;
  }

  /** Speech to text with the loaded speech model: text, and one segment per 30 s window (times from window offsets). */
  async transcribe(request: TranscribeRequest): Promise<Transcription> {
    if (!this.speech) throw new ModelNotLoadedError("no speech model is loaded", "call engine.loadSpeech(id) first");
    const language = request.language ?? "en";
    if (!this.speech.speech.languages.includes(language)) {
      throw new InvalidRequestError(`${this.speech.id} transcribes ${this.speech.speech.languages.join(", ")}, not ${language}`,
        "leave language out, or export a multilingual Whisper");
    }
    const samples = await toSamples(request.audio, this.speech.speech.sample_rate, request);
    const copy = samples.slice(); // transferred to the worker; the caller keeps its array
    return this.call("transcribe", { samples: copy }, { onSpeechProgress: request.onProgress }, [copy.buffer]);
  }

  /** The log-mel input_features the model sees for 16 kHz samples (one 30 s window), for checks. */
  async speechFeatures(samples: Float32Array): Promise<LogMel> {
    return this.call("speechFeatures", { samples: samples.slice() });
  }

  async embedImages(images: ImageInput[]): Promise<Float32Array[]> {
    checkImages(images);
    return this.call("embedImages", { images: await Promise.all(images.map(toPayload)) });
  }

  /** pixel_values [3, H, W] per image, exactly as the model's image processor makes them (for checks). */
  async pixelValues(images: ImageInput[]): Promise<PixelValues[]> {
    checkImages(images);
    return this.call("pixelValues", { images: await Promise.all(images.map(toPayload)) });
  }

  async embedTexts(texts: string[]): Promise<Float32Array[]> {
    checkStrings(texts, "texts", true);
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
    checkClassifyRequest(request);
    const images = await Promise.all(request.images.map(toPayload));
    const { onProgress, ...fudd } = request.fudd ?? {};
    return this.call("classify", { images, labels: request.labels, template: request.template, topK: request.topK,
      fudd: request.fudd && fudd, classifier: request.classifier }, { onFuddProgress: onProgress });
  }

  /** A class's descriptions (given, or written by the chat model against `against`) ranked by similarity to the images. */
  async explainClass(request: ExplainRequest): Promise<ClassExplanation> {
    const { images, onProgress, ...rest } = request;
    checkImages(images);
    return this.call("explainClass", { ...rest, images: await Promise.all(images.map(toPayload)) },
      { onFuddProgress: onProgress });
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
        if (!this.llm) throw new ModelNotLoadedError("no LLM is loaded", "call engine.loadLlm(id) first");
        return this.llm.id;
      },
      generate: (params, onEvent) => {
        const key = this.nextChatKey++;
        let aborted = false;
        const result = this.call("chat", { key, params }, { onChunk: onEvent }).then((r: GenerationResult) => {
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

  private call<K extends RequestType>(type: K, request: Requests[K]["request"],
    handlers: Handlers = {}, transfer: Transferable[] = []): Promise<Requests[K]["result"]> {
    if (this.closed) return Promise.reject(new EngineClosedError("the engine was disposed"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { ...handlers, resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, type, ...request } as WorkerRequest, transfer);
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
    if (msg.kind === "speechProgress") {
      pending.onSpeechProgress?.(msg.progress);
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
