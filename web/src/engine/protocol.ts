// Typed messages between the main thread (api.ts) and the engine worker (worker.ts).
// Every request carries an id; the worker answers with progress events and then exactly one
// result or error for that id. The LLM engine adds its own request types here (chat).

import type { GenerationEvent, GenerationParams, GenerationResult } from "./chat";
import type { SerializedError } from "./errors";
import type { ClassExplanation, ExplainRequestWire, FuddClassification, FuddOptionsWire } from "./fudd_run";
import type { FuddProgress } from "./fudd_describer";
import type { FewshotRequests } from "./fewshot/wire";
import type { ImagePayload } from "./image";
import type { ChatModelInfo } from "./llm";
import type { RuntimeName, RuntimeRequest } from "./runtime";
import type { PixelValues } from "./preprocess";
import type { LabelScore } from "./scoring";
import type { DownloadProgress } from "./store";
import type { VisionModelInfo } from "./vision";

export interface LoadOptionsWire {
  runtime: RuntimeRequest;
  /** Variant name from the manifest; default: the manifest's default for the runtime. */
  variant?: string;
  /** WASM threads; default: hardwareConcurrency when cross-origin isolated. */
  threads?: number;
  /** Refuse models whose files add up to more than this (ModelTooLargeError). */
  maxBytes?: number;
  /** Chat on WASM: expand 4-bit (MatMulNBits) weights to fp32 once at load; default true. */
  expandWeights?: boolean;
}

export interface LoadResult {
  runtime: RuntimeName;
  runtimeReason: string;
  threads: number;
  clip: VisionModelInfo;
  /** The chat model, when load() was asked for one too. */
  llm?: ChatModelInfo;
  /** Milliseconds spent downloading and creating sessions. */
  loadMs: number;
}

export interface ChatLoadResult {
  runtime: RuntimeName;
  runtimeReason: string;
  threads: number;
  llm: ChatModelInfo;
  loadMs: number;
}

/** Few-shot requests (fewshot/wire.ts) are merged in. */
export interface Requests extends FewshotRequests {
  load: { request: { clip: string; options: LoadOptionsWire }; result: LoadResult };
  embedImages: { request: { images: ImagePayload[] }; result: Float32Array[] };
  pixelValues: { request: { images: ImagePayload[] }; result: PixelValues[] };
  embedTexts: { request: { texts: string[] }; result: Float32Array[] };
  classify: {
    /** With `fudd`: the top K re-ranked with differential descriptions ("fuddProgress" while they are written). */
    request: { images: ImagePayload[]; labels: string[]; template?: string; topK?: number; fudd?: FuddOptionsWire;
      /** A saved few-shot classifier id: its adapted scores instead of zero-shot. */
      classifier?: string };
    result: LabelScore[][] | FuddClassification;
  };
  /** A class's descriptions ranked by similarity to the images ("fuddProgress" while they are written). */
  explainClass: { request: ExplainRequestWire & { images: ImagePayload[]; template?: string }; result: ClassExplanation };
  dispose: { request: Record<string, never>; result: null };
  loadChat: { request: { llm: string; options: LoadOptionsWire }; result: ChatLoadResult };
  /** Streams "chunk" responses (one per decode step), then the result. */
  chat: { request: { key: number; params: GenerationParams }; result: GenerationResult };
  /** Handled as soon as it arrives (not queued): stops the chat request with that key after its current step. */
  chatAbort: { request: { key: number }; result: null };
  /** Downloads (verified, resumable) a model's files into the offline cache: `paths`, or all its files. */
  cacheFiles: { request: { model: string; paths?: string[] }; result: null };
}

export type RequestType = keyof Requests;

export type WorkerRequest = {
  [K in RequestType]: { id: number; type: K } & Requests[K]["request"];
}[RequestType];

export type WorkerResponse =
  | { id: number; kind: "progress"; progress: DownloadProgress }
  | { id: number; kind: "chunk"; event: GenerationEvent }
  | { id: number; kind: "fuddProgress"; progress: FuddProgress }
  | { id: number; kind: "result"; result: unknown }
  | { id: number; kind: "error"; error: SerializedError };
