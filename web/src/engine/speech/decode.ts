// Whisper greedy decoding, the same rules as runtime/whisper_decode.py (which follows CTranslate2):
// prompt from generation_config.json, suppress_tokens every step and begin_suppress_tokens on the
// first, argmax until <|endoftext|>, at most min(max_length/2, max_length - prompt) tokens;
// no_speech_prob = softmax(logits after <|startoftranscript|>)[no-speech token]; a window is silence
// when no_speech_prob > 0.6 and the mean log-probability < -1 (openai-whisper / faster-whisper),
// or, before decoding, when its RMS is below -80 dBFS.

export const NO_SPEECH_THRESHOLD = 0.6;
export const LOGPROB_THRESHOLD = -1.0;
export const QUIET_RMS = 1e-4;

export interface DecodeRules {
  prompt: number[];
  eot: number;
  noSpeech: number;
  suppress: number[];
  beginSuppress: number[];
  maxLength: number;
}

export interface Decoded {
  tokens: number[];
  logprobs: number[];
  noSpeechProb: number;
}

/** generation_config.json as the exporter writes it (exporter/whisper/hf_files.py). */
export interface WhisperGenerationConfig {
  decoder_start_token_id: number;
  eos_token_id: number;
  no_speech_token_id: number;
  forced_decoder_ids?: Array<[number, number]> | null;
  suppress_tokens?: number[] | null;
  begin_suppress_tokens?: number[] | null;
  max_length?: number;
}

export function decodeRules(config: WhisperGenerationConfig): DecodeRules {
  const forced = [...(config.forced_decoder_ids ?? [])].sort((a, b) => a[0] - b[0]).map(([, id]) => id);
  return {
    prompt: [config.decoder_start_token_id, ...forced],
    eot: config.eos_token_id,
    noSpeech: config.no_speech_token_id,
    suppress: config.suppress_tokens ?? [],
    beginSuppress: config.begin_suppress_tokens ?? [],
    maxLength: config.max_length ?? 448,
  };
}

export function maxNewTokens(rules: DecodeRules): number {
  return Math.min(Math.floor(rules.maxLength / 2), rules.maxLength - rules.prompt.length);
}

export function isQuiet(samples: Float32Array): boolean {
  if (samples.length === 0) return true;
  let sum = 0;
  for (const s of samples) sum += s * s;
  return Math.sqrt(sum / samples.length) < QUIET_RMS;
}

export function avgLogprob(decoded: Decoded): number {
  return decoded.logprobs.length ? decoded.logprobs.reduce((a, b) => a + b, 0) / decoded.logprobs.length : 0;
}

export function isSilence(decoded: Decoded): boolean {
  return decoded.noSpeechProb > NO_SPEECH_THRESHOLD && avgLogprob(decoded) < LOGPROB_THRESHOLD;
}

/** log-softmax(x)[index] in float64. */
function logProb(row: Float32Array, index: number): number {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return row[index]! - max - Math.log(sum);
}

/** `step(ids)` feeds tokens after those already fed and returns one logits row per id. */
export type DecoderStep = (ids: number[]) => Promise<Float32Array[]>;

export async function greedy(step: DecoderStep, rules: DecodeRules, cap?: number): Promise<Decoded> {
  const rows = await step(rules.prompt);
  const noSpeechProb = Math.exp(logProb(rows[0]!, rules.noSpeech));
  let last = rows[rows.length - 1]!;
  const tokens: number[] = [];
  const logprobs: number[] = [];
  const limit = Math.min(maxNewTokens(rules), cap ?? Infinity);
  for (let i = 0; i < limit; i++) {
    const masked = Float32Array.from(last);
    for (const id of rules.suppress) masked[id] = -Infinity;
    if (i === 0) for (const id of rules.beginSuppress) masked[id] = -Infinity;
    let token = 0;
    for (let v = 1; v < masked.length; v++) if (masked[v]! > masked[token]!) token = v;
    logprobs.push(logProb(masked, token));
    if (token === rules.eot) break;
    tokens.push(token);
    last = (await step([token]))[0]!;
  }
  return { tokens, logprobs, noSpeechProb };
}
