// Choosing the next token from one position's logits: greedy, or seeded temperature / nucleus
// sampling; plus log-probabilities for the OpenAI `logprobs` option. Pure functions over
// Float32Array [vocab], runtime-independent.

/** mulberry32: a tiny, well-mixed 32-bit PRNG; what matters here is only that a seed replays. */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** Index of the largest value; the first one on ties (as numpy.argmax). */
export function argmax(logits: Float32Array): number {
  let best = 0;
  let bestValue = logits[0]!;
  for (let i = 1; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/**
 * Picks the next token from one position's logits [vocab]. temperature 0: argmax. Otherwise
 * softmax(logits / temperature), restricted to the smallest set of most likely tokens whose mass
 * reaches top_p, sampled with `rng`. Sorting the whole vocabulary (49k) every token would cost
 * more than a decode step, so the nucleus is searched among the top k, doubling k until it fits.
 */
export function sampleToken(logits: Float32Array, temperature: number, topP: number, rng: SeededRandom): number {
  if (temperature === 0) return argmax(logits);
  const maxLogit = logits[argmax(logits)]!;
  const weights = new Float64Array(logits.length); // unnormalized probabilities
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    const w = Math.exp((logits[i]! - maxLogit) / temperature);
    weights[i] = w;
    total += w;
  }
  if (topP >= 1) return drawFrom(weights, total, rng);

  for (let k = Math.min(64, logits.length); ; k = Math.min(k * 2, logits.length)) {
    const top = topIndices(weights, k); // descending by weight, ties by index
    let mass = 0;
    for (let j = 0; j < top.length; j++) {
      mass += weights[top[j]!]!;
      if (mass >= topP * total || j === logits.length - 1) {
        const nucleus = top.subarray(0, j + 1);
        let u = rng.next() * mass;
        for (const idx of nucleus) {
          u -= weights[idx]!;
          if (u < 0) return idx;
        }
        return nucleus[nucleus.length - 1]!;
      }
    }
  }
}

function drawFrom(weights: Float64Array, total: number, rng: SeededRandom): number {
  let u = rng.next() * total;
  let last = 0;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i]!;
    if (w === 0) continue;
    last = i;
    u -= w;
    if (u < 0) return i;
  }
  return last; // rounding left a sliver of u
}

/** The k largest entries' indices, largest first (ties: lower index first), via a min-heap. */
export function topIndices(values: Float64Array, k: number): Uint32Array {
  const heap = new Uint32Array(k);
  let size = 0;
  // "a ranks below b": smaller value, or equal value and larger index.
  const below = (a: number, b: number) => values[a]! < values[b]! || (values[a] === values[b] && a > b);
  const siftDown = (start: number) => {
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < size && below(heap[l]!, heap[m]!)) m = l;
      if (r < size && below(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let idx = 0; idx < values.length; idx++) {
    if (size < k) {
      heap[size] = idx;
      let i = size++;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!below(heap[i]!, heap[parent]!)) break;
        [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
        i = parent;
      }
    } else if (below(heap[0]!, idx)) {
      heap[0] = idx;
      siftDown(0);
    }
  }
  return heap.subarray(0, size).sort((a, b) => (below(a, b) ? 1 : below(b, a) ? -1 : 0));
}

/** log_softmax of one position's logits [vocab] (float64 sums, so tiny probabilities keep their digits). */
export function logSoftmax(logits: Float32Array): Float64Array {
  const maxLogit = logits[argmax(logits)]!;
  let total = 0;
  for (let i = 0; i < logits.length; i++) total += Math.exp(logits[i]! - maxLogit);
  const logTotal = Math.log(total) + maxLogit;
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - logTotal;
  return out;
}
