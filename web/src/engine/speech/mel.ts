// Whisper's log-mel spectrogram, computed as Hugging Face's WhisperFeatureExtractor does
// (transformers audio_utils: spectrogram + mel_filter_bank), in float64:
//   pad/trim to chunk_length s with zeros -> reflect-pad n_fft/2 both sides -> frames of n_fft every
//   hop_length samples, periodic Hann window -> |rfft|^2 -> slaney mel filters (0-8 kHz, slaney
//   norm) -> log10(max(mel, 1e-10)) -> drop the last frame -> max(x, max(x) - 8) -> (x + 4) / 4.
// Tested against the Python extractor within 1e-4 in the browser (tests/test_browser_speech.py).

import { Fft } from "./fft";

/** The fields of preprocessor_config.json this needs. */
export interface WhisperFeatureConfig {
  feature_size: number;
  sampling_rate: number;
  hop_length: number;
  n_fft: number;
  chunk_length: number;
}

export interface LogMel {
  /** [nMels, frames] row-major */
  data: Float32Array;
  nMels: number;
  frames: number;
}

const MIN_LOG_HERTZ = 1000;
const MIN_LOG_MEL = 15;
const LOGSTEP = 27 / Math.log(6.4);

function hertzToMel(f: number): number {
  return f >= MIN_LOG_HERTZ ? MIN_LOG_MEL + Math.log(f / MIN_LOG_HERTZ) * LOGSTEP : (3 * f) / 200;
}

function melToHertz(m: number): number {
  return m >= MIN_LOG_MEL ? MIN_LOG_HERTZ * Math.exp((m - MIN_LOG_MEL) / LOGSTEP) : (200 * m) / 3;
}

/** Slaney-scale triangular filters with slaney area normalisation: [bins][nMels]. */
export function melFilters(bins: number, nMels: number, sampleRate: number, fMin = 0, fMax = 8000): Float64Array[] {
  const fftFreqs = Array.from({ length: bins }, (_, i) => (i * (sampleRate / 2)) / (bins - 1));
  const melMin = hertzToMel(fMin);
  const melMax = hertzToMel(fMax);
  const edges = Array.from({ length: nMels + 2 }, (_, i) => melToHertz(melMin + (i * (melMax - melMin)) / (nMels + 1)));
  return fftFreqs.map((f) => {
    const row = new Float64Array(nMels);
    for (let m = 0; m < nMels; m++) {
      const down = (f - edges[m]!) / (edges[m + 1]! - edges[m]!);
      const up = (edges[m + 2]! - f) / (edges[m + 2]! - edges[m + 1]!);
      const enorm = 2 / (edges[m + 2]! - edges[m]!);
      row[m] = Math.max(0, Math.min(down, up)) * enorm;
    }
    return row;
  });
}

function periodicHann(n: number): Float64Array {
  return Float64Array.from({ length: n }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n));
}

/** numpy's "reflect" index (the edge sample is not repeated). */
function reflect(i: number, length: number): number {
  if (i < 0) return -i;
  if (i >= length) return 2 * (length - 1) - i;
  return i;
}

export class LogMelExtractor {
  private readonly fft: Fft;
  private readonly window: Float64Array;
  private readonly filters: Float64Array[];
  readonly samples: number;

  constructor(private readonly config: WhisperFeatureConfig) {
    this.fft = new Fft(config.n_fft);
    this.window = periodicHann(config.n_fft);
    this.filters = melFilters(1 + config.n_fft / 2, config.feature_size, config.sampling_rate);
    this.samples = config.chunk_length * config.sampling_rate;
  }

  /** samples at sampling_rate, any length (padded with zeros or cut to chunk_length s) -> input_features. */
  extract(input: Float32Array): LogMel {
    const { n_fft: nFft, hop_length: hop, feature_size: nMels } = this.config;
    const length = this.samples;
    const wave = new Float64Array(length);
    wave.set(input.subarray(0, length));
    const half = nFft / 2;
    const frames = 1 + Math.floor(length / hop) - 1; // 1 + (L + 2*half - nFft) / hop, minus the dropped last frame
    const bins = 1 + half;
    const out = new Float64Array(nMels * frames);
    const frame = new Float64Array(nFft);
    const re = new Float64Array(nFft);
    const im = new Float64Array(nFft);
    const power = new Float64Array(bins);
    let max = -Infinity;
    for (let t = 0; t < frames; t++) {
      const start = t * hop - half;
      for (let i = 0; i < nFft; i++) frame[i] = wave[reflect(start + i, length)]! * this.window[i]!;
      this.fft.realForward(frame, re, im);
      for (let k = 0; k < bins; k++) power[k] = re[k]! * re[k]! + im[k]! * im[k]!;
      for (let m = 0; m < nMels; m++) {
        let sum = 0;
        for (let k = 0; k < bins; k++) sum += this.filters[k]![m]! * power[k]!;
        const value = Math.log10(Math.max(sum, 1e-10));
        out[m * frames + t] = value;
        if (value > max) max = value;
      }
    }
    const data = new Float32Array(out.length);
    for (let i = 0; i < out.length; i++) data[i] = (Math.max(out[i]!, max - 8) + 4) / 4;
    return { data, nMels, frames };
  }
}
