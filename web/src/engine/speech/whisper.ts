// A Whisper model on onnxruntime-web, in the worker: onnx/encoder_model*.onnx once per 30 s window,
// onnx/decoder_model_merged*.onnx step by step with its KV cache (use_cache_branch false on the first
// call, which also computes the cross-attention cache; true after), greedy decoding by decode.ts,
// text by tokenizer.json. Same files and rules as runtime/whisper.py.

import { Tokenizer } from "@huggingface/tokenizers";
import type * as Ort from "onnxruntime-web";
import { InferenceError, ModelNotFoundError } from "../errors";
import type { ModelEntry, SpeechInfo } from "../manifest.gen";
import type { Runtime } from "../runtime/runtime";
import { fetchFiles, fileEntry, type ProgressCallback } from "../storage/store";
import { checkSize, decodeJson, DEFAULT_MAX_MODEL_BYTES, pickVariant, requiredConfig } from "../runtime/model_files";
import { createSession } from "../runtime/session";
import { dropOverlap, planWindows } from "./chunks";
import { type Decoded, decodeRules, type DecodeRules, greedy, isQuiet, isSilence, type WhisperGenerationConfig } from "./decode";
import { type LogMel, LogMelExtractor, type WhisperFeatureConfig } from "./mel";

/** Seconds two neighbouring windows share, so a word cut by one window is whole in the next. */
export const OVERLAP_SECONDS = 5;

export interface SpeechModelInfo {
  id: string;
  revision: string;
  trained: boolean;
  note: string | null;
  variant: string;
  bytes: number;
  speech: SpeechInfo;
  /** e.g. "onnxruntime-web wasm, 2 threads, variant fp32" */
  runtime: string;
}

export interface SpeechLoadOptions {
  variant?: string;
  maxBytes?: number;
  onProgress?: ProgressCallback;
}

export interface TranscriptSegment {
  /** Seconds from the start of the audio: the window's span (timestamps: "chunk-offsets"). */
  start: number;
  end: number;
  text: string;
  noSpeechProb: number | null;
  avgLogprob: number | null;
}

export interface Transcription {
  text: string;
  segments: TranscriptSegment[];
  /** Where segment times come from (see SpeechInfo.timestamps). */
  timestamps: SpeechInfo["timestamps"];
  durationSeconds: number;
  /** Compute time (features + encoder + decoder), for the real-time factor. */
  computeMs: number;
}

export interface TranscribeProgress {
  window: number;
  windows: number;
}

export class WhisperModel {
  private constructor(
    readonly info: SpeechModelInfo,
    private readonly runtime: Runtime,
    private readonly encoder: Ort.InferenceSession,
    private readonly decoder: Ort.InferenceSession,
    private readonly mel: LogMelExtractor,
    private readonly rules: DecodeRules,
    private readonly tokenizer: Tokenizer,
  ) {}

  static async load(entry: ModelEntry, runtime: Runtime, options: SpeechLoadOptions = {}): Promise<WhisperModel> {
    if (!entry.speech) throw new ModelNotFoundError(`${entry.id} is not a speech model (task ${entry.task})`);
    const variant = pickVariant(entry, runtime, options.variant);
    const roles = entry.variants[variant]!.files;
    const encoderPath = roles["encoder_model"];
    const decoderPath = roles["decoder_model_merged"];
    if (!encoderPath || !decoderPath) {
      throw new ModelNotFoundError(`variant ${variant} of ${entry.id} lacks an encoder_model or decoder_model_merged file`,
        "re-export it: python -m exporter whisper");
    }
    const configs = (["preprocessor", "generation_config", "tokenizer", "tokenizer_config"] as const)
      .map((role) => requiredConfig(entry, role));
    const configPaths = configs.map((f) => f.path);
    const files = [fileEntry(entry, encoderPath), fileEntry(entry, decoderPath), ...configs];
    const bytes = files.reduce((s, f) => s + f.bytes, 0);
    checkSize(entry, variant, bytes, Math.max(...files.map((f) => f.bytes)), runtime,
      options.maxBytes ?? DEFAULT_MAX_MODEL_BYTES);
    const data = await fetchFiles(files, options.onProgress);
    const [pre, gen, tok, tokConfig] = configPaths as [string, string, string, string];
    const tokenizer = new Tokenizer(decodeJson<object>(data.get(tok), tok),
      decodeJson<Record<string, unknown>>(data.get(tokConfig), tokConfig));
    const encoder = await createSession(runtime, data.get(encoderPath)!, encoderPath);
    const decoder = await createSession(runtime, data.get(decoderPath)!, decoderPath);
    const info: SpeechModelInfo = {
      id: entry.id, revision: entry.revision, trained: entry.trained, note: entry.note ?? null, variant, bytes,
      speech: entry.speech, runtime: `onnxruntime-web ${runtime.name}, ${runtime.threads} thread(s), variant ${variant}`,
    };
    return new WhisperModel(info, runtime, encoder, decoder,
      new LogMelExtractor(decodeJson<WhisperFeatureConfig>(data.get(pre), pre)),
      decodeRules(decodeJson<WhisperGenerationConfig>(data.get(gen), gen)), tokenizer);
  }

  /** input_features of one window (for checks against Python's WhisperFeatureExtractor). */
  features(samples: Float32Array): LogMel {
    return this.mel.extract(samples);
  }

  /** Mono samples at the model's rate -> text and one segment per window. */
  async transcribe(samples: Float32Array, onProgress?: (p: TranscribeProgress) => void): Promise<Transcription> {
    const start = performance.now();
    const rate = this.info.speech.sample_rate;
    const windows = planWindows(samples.length, this.info.speech.chunk_seconds * rate, OVERLAP_SECONDS * rate);
    const segments: TranscriptSegment[] = [];
    let text = "";
    for (const [i, w] of windows.entries()) {
      onProgress?.({ window: i, windows: windows.length });
      const part = await this.transcribeWindow(samples.subarray(w.start, w.end));
      const fresh = i === 0 ? part.text : dropOverlap(text, part.text);
      segments.push({ start: w.start / rate, end: w.end / rate, text: fresh,
        noSpeechProb: part.decoded?.noSpeechProb ?? null,
        avgLogprob: part.decoded ? part.decoded.logprobs.reduce((a, b) => a + b, 0) / Math.max(1, part.decoded.logprobs.length) : null });
      if (fresh) text = text ? `${text} ${fresh}` : fresh;
    }
    onProgress?.({ window: windows.length, windows: windows.length });
    return { text, segments, timestamps: this.info.speech.timestamps, durationSeconds: samples.length / rate,
      computeMs: performance.now() - start };
  }

  /** One window of at most chunk_seconds; "" for silence. `decoded` is null when the energy gate skipped decoding. */
  async transcribeWindow(samples: Float32Array): Promise<{ text: string; decoded: Decoded | null }> {
    if (isQuiet(samples)) return { text: "", decoded: null };
    const mel = this.mel.extract(samples);
    const ort = this.runtime.ort;
    const encoded = await this.run(this.encoder, {
      input_features: new ort.Tensor("float32", mel.data, [1, mel.nMels, mel.frames]),
    });
    const hidden = encoded["last_hidden_state"] ?? Object.values(encoded)[0]!;
    const decoded = await greedy(this.decoderStep(hidden), this.rules);
    const text = isSilence(decoded) || decoded.tokens.length === 0 ? ""
      : this.tokenizer.decode(decoded.tokens, { skip_special_tokens: true }).trim();
    return { text, decoded };
  }

  /** step(ids) -> one logits row per id, keeping the self-attention cache and the first call's cross-attention cache. */
  private decoderStep(hidden: Ort.Tensor) {
    const ort = this.runtime.ort;
    const pastNames = this.decoder.inputNames.filter((n) => n.startsWith("past_key_values."));
    const [, heads, , headDim] = this.pastShape(pastNames[0]!);
    const past = new Map<string, Ort.Tensor>(
      pastNames.map((n) => [n, new ort.Tensor("float32", new Float32Array(0), [1, heads, 0, headDim])]));
    let firstCall = true;
    return async (ids: number[]): Promise<Float32Array[]> => {
      const feeds: Record<string, Ort.Tensor> = {
        input_ids: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]),
        encoder_hidden_states: hidden,
        use_cache_branch: new ort.Tensor("bool", new Uint8Array([firstCall ? 0 : 1]), [1]),
      };
      for (const [name, tensor] of past) feeds[name] = tensor;
      const out = await this.run(this.decoder, feeds);
      for (const name of pastNames) {
        if (firstCall || name.includes(".decoder.")) past.set(name, out[name.replace("past_key_values.", "present.")]!);
      }
      firstCall = false;
      const logits = out["logits"]!;
      const vocab = logits.dims[2]!;
      const data = logits.data as Float32Array;
      return ids.map((_, i) => data.slice(i * vocab, (i + 1) * vocab));
    };
  }

  /** [1, heads, 0, headDim] of an empty cache, from the graph's input shape [batch, heads, past, headDim]. */
  private pastShape(name: string): [number, number, number, number] {
    const meta = this.decoder.inputMetadata.find((m) => m.name === name);
    const shape = meta && "shape" in meta ? meta.shape : [];
    const heads = Number(shape[1]);
    const headDim = Number(shape[3]);
    if (!Number.isFinite(heads) || !Number.isFinite(headDim)) {
      throw new InferenceError(`cannot read the KV-cache shape of ${name}`, "re-export the model");
    }
    return [1, heads, 0, headDim];
  }

  private async run(session: Ort.InferenceSession, feeds: Record<string, Ort.Tensor>) {
    try {
      return await session.run(feeds);
    } catch (err) {
      throw new InferenceError(`Whisper inference failed: ${String(err)}`, "reload the model; if it persists, re-export it");
    }
  }

  async dispose(): Promise<void> {
    await this.encoder.release();
    await this.decoder.release();
  }
}
