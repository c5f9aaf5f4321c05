// A CLIP-family model (CLIP, SigLIP, ALIGN) in the worker: its two ONNX towers, its own image
// processor config and tokenizer, and the manifest's VisionInfo for scoring.

import type * as Ort from "onnxruntime-web";
import { InferenceError, ModelNotFoundError } from "../errors";
import type { ModelEntry, VisionInfo } from "../manifest.gen";
import { dequantizeMatMulNBits } from "../runtime/onnx_dequant";
import { expandInt8Weights } from "../runtime/onnx_int8_expand";
import { checkSize, decodeJson, DEFAULT_MAX_MODEL_BYTES, pickVariant, requiredConfig } from "../runtime/model_files";
import type { Runtime } from "../runtime/runtime";
import { createSession } from "../runtime/session";
import { fetchFiles, fileEntry, type ProgressCallback } from "../storage/store";
import { preprocess, type PixelValues, type PreprocessorConfig } from "./preprocess";
import type { RgbImage } from "./resample";
import { l2Normalize } from "./scoring";
import { TextTokenizer } from "./text_tokenizer";

const IMAGE_BATCH = 8;
const TEXT_BATCH = 32;
// Dynamic int8 quantization scales activations per run, so an item's embedding would depend on
// its batch-mates (and, for text, on padding): quantized variants embed one item per run, unless
// their weights were expanded to fp32 at load (no DynamicQuantizeLinear left).
const BATCH_SAFE_DTYPES = new Set(["fp32", "fp16"]);

export interface VisionLoadOptions {
  variant?: string;
  /** Expand quantized weights to fp32 once at load; default: as the manifest's variant says for this runtime. */
  expandWeights?: boolean;
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
  /** Weights expanded to fp32 at load (runtime/onnx_int8_expand.ts, onnx_dequant.ts), or null when run as downloaded. */
  expanded: ExpandedWeights | null;
}

export interface ExpandedWeights {
  /** Quantized products (MatMulInteger / ConvInteger / MatMulNBits) rewritten, both towers. */
  products: number;
  /** Both towers' model bytes as handed to onnxruntime, against the downloaded files' bytes. */
  modelBytes: number;
  fileBytes: number;
  /** DynamicQuantizeLinear nodes left (0: embeddings do not depend on batch-mates). */
  dynamicQuantizeLeft: number;
}

/** One tower's bytes with its quantized weights in fp32; unchanged when it has none this rewrite knows. */
function expandTower(bytes: Uint8Array): { bytes: Uint8Array; products: number; dynamicQuantizeLeft: number } {
  const int8 = expandInt8Weights(bytes);
  const afterInt8 = int8?.bytes ?? bytes;
  const nbits = dequantizeMatMulNBits(afterInt8);
  return {
    bytes: nbits?.bytes ?? afterInt8,
    products: (int8?.products ?? 0) + (nbits?.nodes ?? 0),
    dynamicQuantizeLeft: int8?.dynamicQuantizeLeft ?? 1, // not rewritable here: assume it has some
  };
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
    const configs = [requiredConfig(entry, "preprocessor"), requiredConfig(entry, "tokenizer"),
      requiredConfig(entry, "tokenizer_config")];
    const files = [fileEntry(entry, visionPath), fileEntry(entry, textPath), ...configs];
    const bytes = files.reduce((s, f) => s + f.bytes, 0);
    checkSize(entry, variant, bytes, Math.max(...files.map((f) => f.bytes)), runtime,
      options.maxBytes ?? DEFAULT_MAX_MODEL_BYTES);

    const data = await fetchFiles(files, options.onProgress);
    const [preprocessorPath, tokenizerPath, tokenizerConfigPath] = configs.map((f) => f.path) as [string, string, string];
    const vision = entry.vision;
    const tokenizer = new TextTokenizer(
      decodeJson<object>(data.get(tokenizerPath), tokenizerPath),
      decodeJson<Record<string, unknown>>(data.get(tokenizerConfigPath), tokenizerConfigPath),
      { maxLength: vision.text_max_length, padToMaxLength: vision.pad_to_max_length, inputNames: vision.text_inputs },
    );
    let visionBytes = data.get(visionPath)!;
    let textBytes = data.get(textPath)!;
    let expanded: ExpandedWeights | null = null;
    const chosen = entry.variants[variant]!;
    const expand = options.expandWeights ?? (chosen.expand_weights ?? []).includes(runtime.name);
    // The steps after the download take seconds on ViT-B/32 too: say which one runs.
    const steps = expand ? ["expanding weights", "creating the sessions"] : ["creating the sessions"];
    const preparing = (done: number) => options.onProgress?.({ loadedBytes: bytes, totalBytes: bytes, mbPerSecond: 0,
      etaSeconds: null, file: visionPath, preparing: { step: steps[done]!, done, total: steps.length } });
    preparing(0);
    if (expand) {
      const fileBytes = visionBytes.length + textBytes.length;
      data.delete(visionPath); // let the downloads go once rewritten
      data.delete(textPath);
      const [v, t] = [expandTower(visionBytes), expandTower(textBytes)];
      [visionBytes, textBytes] = [v.bytes, t.bytes];
      expanded = { products: v.products + t.products, modelBytes: v.bytes.length + t.bytes.length, fileBytes,
        dynamicQuantizeLeft: v.dynamicQuantizeLeft + t.dynamicQuantizeLeft };
      preparing(1);
    }
    // Sessions one after the other: two compiles at once only compete for the same cores.
    const visionSession = await createSession(runtime, visionBytes, visionPath);
    const textSession = await createSession(runtime, textBytes, textPath);
    const info: VisionModelInfo = {
      id: entry.id, revision: entry.revision, family: entry.family, variant, dtype: chosen.dtype,
      trained: entry.trained, note: entry.note ?? null, bytes, vision, expanded,
    };
    return new VisionModel(info, runtime, visionSession, textSession,
      decodeJson<PreprocessorConfig>(data.get(preprocessorPath), preprocessorPath), tokenizer);
  }

  /** The image processor's output alone (what the vision tower is fed), for checks against Python. */
  pixelValues(images: RgbImage[]): PixelValues[] {
    return images.map((img) => preprocess(img, this.preprocessor));
  }

  private get batchSafe(): boolean {
    const expanded = this.info.expanded;
    return BATCH_SAFE_DTYPES.has(this.info.dtype) || (expanded !== null && expanded.dynamicQuantizeLeft === 0);
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
