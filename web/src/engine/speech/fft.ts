// A complex DFT for lengths made of small primes (Whisper's n_fft is 400 = 2^4 * 5^2, not a power
// of two), by recursive mixed-radix decimation in time. Exact up to float64 rounding.

export class Fft {
  readonly n: number;
  private readonly factors: number[];
  private readonly cos: Float64Array;
  private readonly sin: Float64Array;

  constructor(n: number) {
    this.n = n;
    this.factors = [];
    let rest = n;
    for (const p of [4, 2, 3, 5, 7]) {
      while (rest % p === 0) {
        this.factors.push(p);
        rest /= p;
      }
    }
    if (rest !== 1) throw new Error(`FFT length ${n} has a prime factor above 7`);
    // twiddles W_n^j = exp(-2 pi i j / n)
    this.cos = new Float64Array(n);
    this.sin = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      this.cos[j] = Math.cos((2 * Math.PI * j) / n);
      this.sin[j] = -Math.sin((2 * Math.PI * j) / n);
    }
  }

  /** X[k] = sum_t x[t] exp(-2 pi i k t / n) for real x; writes outRe/outIm (length n). */
  realForward(x: Float64Array, outRe: Float64Array, outIm: Float64Array): void {
    const zeros = new Float64Array(this.n);
    this.step(x, zeros, 0, 1, this.n, outRe, outIm, 0, 0);
  }

  private step(inRe: Float64Array, inIm: Float64Array, offset: number, stride: number, n: number,
    outRe: Float64Array, outIm: Float64Array, outOffset: number, depth: number): void {
    if (n === 1) {
      outRe[outOffset] = inRe[offset]!;
      outIm[outOffset] = inIm[offset]!;
      return;
    }
    const p = this.factors[depth]!;
    const m = n / p;
    // Sub-transforms of the p interleaved subsequences, stored one after another: Y_r at outOffset + r*m.
    for (let r = 0; r < p; r++) {
      this.step(inRe, inIm, offset + r * stride, stride * p, m, outRe, outIm, outOffset + r * m, depth + 1);
    }
    const scale = this.n / n; // W_n^j = W_N^(j * N/n)
    const yRe = new Float64Array(p);
    const yIm = new Float64Array(p);
    for (let k = 0; k < m; k++) {
      for (let r = 0; r < p; r++) {
        yRe[r] = outRe[outOffset + r * m + k]!;
        yIm[r] = outIm[outOffset + r * m + k]!;
      }
      for (let q = 0; q < p; q++) {
        const out = k + q * m;
        let re = 0;
        let im = 0;
        for (let r = 0; r < p; r++) {
          const j = ((r * out) % n) * scale;
          const c = this.cos[j]!;
          const s = this.sin[j]!;
          re += yRe[r]! * c - yIm[r]! * s;
          im += yRe[r]! * s + yIm[r]! * c;
        }
        outRe[outOffset + out] = re;
        outIm[outOffset + out] = im;
      }
    }
  }
}
