// A CLIP-family model (CLIP, SigLIP, ALIGN) in the worker: its two ONNX towers, its own image
// processor config and tokenizer, and the manifest's VisionInfo for scoring.

import type * as Ort from "onnxruntime-web";
import { InferenceError, ModelNotFoundError, ModelTooLargeError } from "./errors";
import type { ModelEntry, VisionInfo } from "./manifest.gen";
import { preprocess, type PixelValues, type PreprocessorConfig } from "./preprocess";
import type { RgbImage } from "./resample";
import type { Runtime } from "./runtime";
import { l2Normalize } from "./scoring";
import { fetchFiles, fileEntry, type ProgressCallback } from "./store";
import { TextTokenizer } from "./tokenizer";

/** 32-bit WASM has 4 GiB of memory; the model bytes and the weights built from them both live there. */
export const DEFAULT_MAX_MODEL_BYTES = 2 * 1024 ** 3;
const IMAGE_BATCH = 8;
const TEXT_BATCH = 32;
// Dynamic int8 quantization scales activations per run, so an item's embedding would depend on
// its batch-mates (and, for text, on padding): quantized variants embed one item per run.
const BATCH_SAFE_DTYPES = new Set(["fp32", "fp16"]);

export interface VisionLoadOptions {
  variant?: string;
  maxBytes?: number;
  onProgress?: ProgressCallback;
}

export interface VisionModelInfo {
  id: string;
  revision: string;
  family: ModelEntry["family"];
  variant: string;
  dtype: string;
  trained: boolean;
  note: string | null;
  bytes: number;
  vision: VisionInfo;
}

export function pickVariant(entry: ModelEntry, runtime: Runtime, requested?: string): string {
  const name = requested ?? entry.defaults[runtime.name] ?? Object.keys(entry.variants)[0];
  if (!name || !entry.variants[name]) {
    throw new ModelNotFoundError(`model ${entry.id} has no variant ${name ?? "(none)"}`,
      `choose one of: ${Object.keys(entry.variants).join(", ")}`);
  }
  return name;
}

export function checkSize(entry: ModelEntry, variant: string, bytes: number, largestFile: number, runtime: Runtime,
  maxBytes: number): void {
  const gib = (n: number) => `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (bytes > maxBytes) {
    throw new ModelTooLargeError(
      `${entry.id} (${variant}) needs ${gib(bytes)} of model files; this runtime allows ${gib(maxBytes)}`,
      "choose a smaller (quantized) variant or a smaller model");
  }
  if (runtime.maxBufferSize !== undefined && largestFile > runtime.maxBufferSize) {
    throw new ModelTooLargeError(
      `${entry.id} (${variant}) has a ${gib(largestFile)} file; this GPU's largest buffer is ${gib(runtime.maxBufferSize)}`,
      "choose a quantized variant, or use the WASM runtime");
  }
}

export function decodeJson<T>(bytes: Uint8Array | undefined, path: string): T {
  if (!bytes) throw new ModelNotFoundError(`${path} was not downloaded`);
  return JSON.parse(new TextDecoder().decode(bytes)) as T;
}

export async function createSession(runtime: Runtime, bytes: Uint8Array, what: string): Promise<Ort.InferenceSession> {
  try {
    return await runtime.ort.InferenceSession.create(bytes, {
      executionProviders: runtime.executionProviders,
      graphOptimizationLevel: "all",
      logSeverityLevel: 3, // errors only: node-placement warnings would reach the console as errors
    });
  } catch (err) {
    throw new InferenceError(`onnxruntime-web (${runtime.name}) cannot load ${what}: ${String(err)}`,
      runtime.name === "webgpu" ? "retry with the WASM runtime" : "re-export the model");
  }
}

/** Rows of a [n, dim] output, L2-normalised. */
function rows(tensor: Ort.Tensor): Float32Array[] {
  const [n, dim] = tensor.dims as [number, number];
  const data = tensor.data as Float32Array;
  return Array.from({ length: n }, (_, i) => l2Normalize(data.slice(i * dim, (i + 1) * dim)));
}

function outputName(session: Ort.InferenceSession, preferred: string): string {
  return session.outputNames.includes(preferred) ? preferred : session.outputNames[0]!;
}

export class VisionModel {
  private constructor(
    readonly info: VisionModelInfo,
    private readonly runtime: Runtime,
    private readonly visionSession: Ort.InferenceSession,
    private readonly textSession: Ort.InferenceSession,
    private readonly preprocessor: PreprocessorConfig,
    private readonly tokenizer: TextTokenizer,
  ) {}

  static async load(entry: ModelEntry, runtime: Runtime, options: VisionLoadOptions = {}): Promise<VisionModel> {
    if (!entry.vision) throw new ModelNotFoundError(`${entry.id} is not a CLIP-family model (task ${entry.task})`);
    const variant = pickVariant(entry, runtime, options.variant);
    const roles = entry.variants[variant]!.files;
    const visionPath = roles["vision_model"];
    const textPath = roles["text_model"];
    if (!visionPath || !textPath) {
      throw new ModelNotFoundError(`variant ${variant} of ${entry.id} lacks a vision_model or text_model file`);
    }
    const configPaths = ["preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"].map((f) => `${entry.id}/${f}`);
    const files = [visionPath, textPath, ...configPaths].map((p) => fileEntry(entry, p));
    const bytes = files.reduce((s, f) => s + f.bytes, 0);
    checkSize(entry, variant, bytes, Math.max(...files.map((f) => f.bytes)), runtime,
      options.maxBytes ?? DEFAULT_MAX_MODEL_BYTES);

    const data = await fetchFiles(files, options.onProgress);
    const [preprocessorPath, tokenizerPath, tokenizerConfigPath] = configPaths as [string, string, string];
    const vision = entry.vision;
    const tokenizer = new TextTokenizer(
      decodeJson<object>(data.get(tokenizerPath), tokenizerPath),
      decodeJson<Record<string, unknown>>(data.get(tokenizerConfigPath), tokenizerConfigPath),
      { maxLength: vision.text_max_length, padToMaxLength: vision.pad_to_max_length, inputNames: vision.text_inputs },
    );
    // Sessions one after the other: two compiles at once only compete for the same cores.
    const visionSession = await createSession(runtime, data.get(visionPath)!, visionPath);
    const textSession = await createSession(runtime, data.get(textPath)!, textPath);
    const info: VisionModelInfo = {
      id: entry.id, revision: entry.revision, family: entry.family, variant, dtype: entry.variants[variant]!.dtype,
      trained: entry.trained, note: entry.note ?? null, bytes, vision,
    };
    return new VisionModel(info, runtime, visionSession, textSession,
      decodeJson<PreprocessorConfig>(data.get(preprocessorPath), preprocessorPath), tokenizer);
  }

  /** The image processor's output alone (what the vision tower is fed), for checks against Python. */
  pixelValues(images: RgbImage[]): PixelValues[] {
    return images.map((img) => preprocess(img, this.preprocessor));
  }

  private get batchSafe(): boolean {
    return BATCH_SAFE_DTYPES.has(this.info.dtype);
  }

  async embedImages(images: RgbImage[]): Promise<Float32Array[]> {
    const size = this.batchSafe ? IMAGE_BATCH : 1;
    const out: Float32Array[] = [];
    for (let i = 0; i < images.length; i += size) {
      const batch = images.slice(i, i + size).map((img) => preprocess(img, this.preprocessor));
      const { height, width } = batch[0]!;
      const pixels = new Float32Array(batch.length * 3 * height * width); // [n, 3, H, W]
      batch.forEach((p, j) => pixels.set(p.data, j * p.data.length));
      const input = new this.runtime.ort.Tensor("float32", pixels, [batch.length, 3, height, width]);
      out.push(...rows(await this.run(this.visionSession, { [this.visionSession.inputNames[0]!]: input }, "image_embeds")));
    }
    return out;
  }

  async embedTexts(texts: string[]): Promise<Float32Array[]> {
    const size = this.tokenizer.batchable && this.batchSafe ? TEXT_BATCH : 1;
    const out: Float32Array[] = [];
    for (let i = 0; i < texts.length; i += size) {
      const { inputs } = this.tokenizer.encode(texts.slice(i, i + size));
      const feeds: Record<string, Ort.Tensor> = {};
      for (const [name, t] of Object.entries(inputs)) feeds[name] = new this.runtime.ort.Tensor("int64", t.data, t.dims);
      out.push(...rows(await this.run(this.textSession, feeds, "text_embeds")));
    }
    return out;
  }

  private async run(session: Ort.InferenceSession, feeds: Record<string, Ort.Tensor>, preferred: string): Promise<Ort.Tensor> {
    try {
      const result = await session.run(feeds);
      return result[outputName(session, preferred)]!;
    } catch (err) {
      throw new InferenceError(`inference failed on ${this.runtime.name}: ${String(err)}`);
    }
  }

  async dispose(): Promise<void> {
    await Promise.all([this.visionSession.release(), this.textSession.release()]);
  }
}
