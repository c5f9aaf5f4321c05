// Typed messages between the main thread (api.ts) and the engine worker (worker.ts).
// Every request carries an id; the worker answers with progress events and then exactly one
// result or error for that id. The LLM engine adds its own request types here (chat).

import type { GenerationEvent, GenerationParams, GenerationResult } from "./llm/chat";
import type { SerializedError } from "./errors";
import type { ClassExplanation, ExplainRequestWire, FuddClassification, FuddOptionsWire } from "./fudd/run";
import type { FuddProgress } from "./fudd/describer";
import type { ImagePayload } from "./vision/image";
import type { LlmModelInfo } from "./llm/onnx_chat_model";
import type { RuntimeName, RuntimeRequest } from "./runtime/runtime";
import type { PixelValues } from "./vision/preprocess";
import type { LabelScore } from "./vision/scoring";
import type { DownloadProgress } from "./storage/store";
import type { VisionModelInfo } from "./vision/vision_model";
import type { LogMel } from "./speech/mel";
import type { SpeechModelInfo, TranscribeProgress, Transcription } from "./speech/whisper";
import type { FewshotRequests } from "./fewshot/wire";

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
  vision: VisionModelInfo;
  /** @deprecated the same object as `vision` (the old name). */
  clip: VisionModelInfo;
  /** The LLM, when load() was asked for one too. */
  llm?: LlmModelInfo;
  /** Milliseconds spent downloading and creating sessions. */
  loadMs: number;
}

export interface LlmLoadResult {
  runtime: RuntimeName;
  runtimeReason: string;
  threads: number;
  llm: LlmModelInfo;
  loadMs: number;
}

export interface SpeechLoadResult {
  runtime: RuntimeName;
  runtimeReason: string;
  threads: number;
  speech: SpeechModelInfo;
  loadMs: number;
}

/** Few-shot requests (fewshot/wire.ts) are merged in. */
export interface Requests extends FewshotRequests {
  load: { request: { vision: string; options: LoadOptionsWire }; result: LoadResult };
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
  loadLlm: { request: { llm: string; options: LoadOptionsWire }; result: LlmLoadResult };
  /** Streams "chunk" responses (one per decode step), then the result. */
  chat: { request: { key: number; params: GenerationParams }; result: GenerationResult };
  /** Handled as soon as it arrives (not queued): stops the chat request with that key after its current step. */
  chatAbort: { request: { key: number }; result: null };
  /** Downloads (verified, resumable) a model's files into the offline cache: `paths`, or all its files. */
  cacheFiles: { request: { model: string; paths?: string[] }; result: null };
  /** Loads a speech model (task automatic-speech-recognition). */
  loadSpeech: { request: { speech: string; options: LoadOptionsWire }; result: SpeechLoadResult };
  /** Mono samples at the model's rate; "speechProgress" per 30 s window. */
  transcribe: { request: { samples: Float32Array }; result: Transcription };
  /** The log-mel input_features of one window (checks against Python). */
  speechFeatures: { request: { samples: Float32Array }; result: LogMel };
}

export type RequestType = keyof Requests;

export type WorkerRequest = {
  [K in RequestType]: { id: number; type: K } & Requests[K]["request"];
}[RequestType];

export type WorkerResponse =
  | { id: number; kind: "progress"; progress: DownloadProgress }
  | { id: number; kind: "chunk"; event: GenerationEvent }
  | { id: number; kind: "fuddProgress"; progress: FuddProgress }
  | { id: number; kind: "speechProgress"; progress: TranscribeProgress }
  | { id: number; kind: "result"; result: unknown }
  | { id: number; kind: "error"; error: SerializedError };
