// OpenAI's logit_bias, presence_penalty and frequency_penalty, applied to one step's logits before
// the grammar mask and sampling (OpenAI's formula: logit[t] - presence * [count[t] > 0] -
// frequency * count[t], counts over the tokens generated so far, not the prompt).

export interface LogitAdjustments {
  /** token id -> bias added to its logit, in [-100, 100] */
  logitBias: Array<[number, number]>;
  presencePenalty: number;
  frequencyPenalty: number;
}

export function hasAdjustments(a: LogitAdjustments): boolean {
  return a.logitBias.length > 0 || a.presencePenalty !== 0 || a.frequencyPenalty !== 0;
}

/** A copy of `logits` [vocab] with the bias and penalties applied; `counts`: generated token id -> times. */
export function adjustLogits(logits: Float32Array, a: LogitAdjustments, counts: Map<number, number>): Float32Array {
  const out = Float32Array.from(logits);
  for (const [id, bias] of a.logitBias) if (id < out.length) out[id] = out[id]! + bias;
  for (const [id, count] of counts) {
    out[id] = out[id]! - a.presencePenalty - a.frequencyPenalty * count;
  }
  return out;
}

/** Checks the three request fields; `vocabSize` bounds the token ids. */
export function logitAdjustments(req: { logit_bias?: unknown; presence_penalty?: unknown; frequency_penalty?: unknown },
  invalid: (message: string, fix?: string) => Error): LogitAdjustments {
  const penalty = (name: string, value: unknown): number => {
    if (value === undefined || value === null) return 0;
    if (typeof value !== "number" || !(value >= -2 && value <= 2)) throw invalid(`${name} must be a number in [-2, 2], got ${JSON.stringify(value)}`);
    return value;
  };
  const logitBias: Array<[number, number]> = [];
  if (req.logit_bias !== undefined && req.logit_bias !== null) {
    if (typeof req.logit_bias !== "object" || Array.isArray(req.logit_bias)) {
      throw invalid("logit_bias must be an object {token id: bias}", 'e.g. {"1234": -100} bans token 1234');
    }
    for (const [key, bias] of Object.entries(req.logit_bias)) {
      const id = Number(key);
      if (!/^\d+$/.test(key)) throw invalid(`logit_bias keys must be token ids, got ${JSON.stringify(key)}`);
      if (typeof bias !== "number" || !(bias >= -100 && bias <= 100)) {
        throw invalid(`logit_bias[${key}] must be a number in [-100, 100], got ${JSON.stringify(bias)}`);
      }
      logitBias.push([id, bias]);
    }
  }
  return {
    logitBias,
    presencePenalty: penalty("presence_penalty", req.presence_penalty),
    frequencyPenalty: penalty("frequency_penalty", req.frequency_penalty),
  };
}
