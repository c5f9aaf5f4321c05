// KV-cache reuse across requests, for one loaded model: the cache the last request ended with is
// kept, with the token ids it holds (prompt + generated, less the last token, which was never fed).
// A new request whose prompt starts with some of those ids reuses them: the cache is cut to the
// longest common prefix and only the rest of the prompt is prefilled. So a multi-turn chat prefills
// only the new turn, and requests that share a system prompt or fixed instructions (FuDD's pairs)
// prefill only what differs. At least one prompt token is always prefilled: its logits start the
// reply. A prompt that shares nothing starts from an empty cache.
//
// Ownership: take() hands the tensors to the caller and empties the store, so a request never
// shares tensors with another; the caller puts its final cache back with store(). KV tensors in GPU
// buffers (WebGPU) are freed by hand when they are replaced, cut or dropped.

import type * as Ort from "onnxruntime-web";
import type { KvSpec } from "./decoder_session";
import { releaseGpu } from "./decoder_session";

type OrtModule = typeof Ort;

/** How many leading ids `a` and `b` share. */
export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** How many of `prompt`'s ids a cache holding `cached` can supply: the common prefix, less one for the logits. */
export function reusableLength(cached: readonly number[], prompt: readonly number[]): number {
  return Math.max(0, Math.min(commonPrefixLength(cached, prompt), prompt.length - 1));
}

/**
 * The first `length` positions of a KV tensor [1, kv_heads, seq, head_dim] (CPU data, float32 or
 * fp16 bits), as a new [1, kv_heads, length, head_dim] tensor.
 */
export function sliceSequence<T extends Float32Array | Uint16Array>(data: T, heads: number, seq: number,
  headDim: number, length: number): T {
  const out = new (data.constructor as new (n: number) => T)(heads * length * headDim);
  for (let h = 0; h < heads; h++) {
    const from = h * seq * headDim;
    out.set(data.subarray(from, from + length * headDim), h * length * headDim);
  }
  return out;
}

export interface ReusedCache {
  /** past_key_values.* -> [1, kv_heads, reused, head_dim] */
  past: Map<string, Ort.Tensor>;
  /** Prompt tokens whose keys and values come from the cache (not prefilled again). */
  reused: number;
}

export class PrefixCache {
  private ids: number[] = [];
  private past: Map<string, Ort.Tensor> | null = null;

  constructor(private readonly ort: OrtModule, private readonly kv: KvSpec) {}

  /** The past for `prompt`: the cached prefix it shares (cut to fit), else an empty cache. Empties the store. */
  async take(prompt: readonly number[], reuse: boolean): Promise<ReusedCache> {
    const cached = this.past;
    const ids = this.ids;
    this.past = null;
    this.ids = [];
    const reused = cached && reuse ? reusableLength(ids, prompt) : 0;
    if (!cached || reused === 0) {
      if (cached) releaseGpu(cached);
      return { past: this.empty(), reused: 0 };
    }
    if (reused === ids.length) return { past: cached, reused };
    const past = new Map<string, Ort.Tensor>();
    for (const [name, tensor] of cached) past.set(name, await this.cut(tensor, ids.length, reused));
    releaseGpu(cached);
    return { past, reused };
  }

  /** Keeps `past` as the cache for the next request; `ids` are the tokens it holds, in order. */
  store(ids: number[], past: Map<string, Ort.Tensor>): void {
    this.clear();
    this.ids = ids;
    this.past = past;
  }

  clear(): void {
    if (this.past) releaseGpu(this.past);
    this.past = null;
    this.ids = [];
  }

  /** Empty cache [1, kv_heads, 0, head_dim]: the prompt's first pass attends to nothing before it. */
  private empty(): Map<string, Ort.Tensor> {
    const data = this.kv.type === "float16" ? new Uint16Array(0) : new Float32Array(0);
    const past = new Map<string, Ort.Tensor>();
    for (const name of this.kv.pastToPresent.keys()) {
      past.set(name, new this.ort.Tensor(this.kv.type, data, [1, this.kv.kvHeads, 0, this.kv.headDim]));
    }
    return past;
  }

  /** [1, kv_heads, seq, head_dim] -> its first `length` positions, on the CPU (a GPU buffer is read back once). */
  private async cut(tensor: Ort.Tensor, seq: number, length: number): Promise<Ort.Tensor> {
    const data = (tensor.location === "gpu-buffer" ? await tensor.getData() : tensor.data) as Float32Array | Uint16Array;
    const sliced = sliceSequence(data, this.kv.kvHeads, seq, this.kv.headDim, length);
    return new this.ort.Tensor(this.kv.type, sliced, [1, this.kv.kvHeads, length, this.kv.headDim]);
  }
}
