// Pillow's Image.resize on 8-bit RGB, reproduced bit for bit so that browser pixel_values equal
// the Hugging Face image processors' (which resize through PIL). The facts, from Pillow's
// libImaging/Resample.c and Geometry.c:
//   - convolution filters: two passes, each rounding to 8 bits; horizontal first (over only the
//     rows the vertical pass needs) unless the height shrinks much more (Pillow 13's rule below);
//   - the filter support grows with the downscale factor (antialiasing);
//   - weights are normalised in double, then made fixed point with 22 fractional bits, rounded
//     half away from zero; sums start at 0.5 (1 << 21) and are clipped to 0..255 after >> 22;
//   - NEAREST is an affine scale: source = trunc(accumulated (x + 0.5) * in / out).
// Images here are interleaved RGB, 3 bytes per pixel, row-major (the layout numpy gives PIL).

/** PIL's resampling filter numbers, as preprocessor_config.json stores them in "resample". */
export const PilResample = { NEAREST: 0, LANCZOS: 1, BILINEAR: 2, BICUBIC: 3, BOX: 4, HAMMING: 5 } as const;

export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array; // [height, width, 3]
}

interface Filter {
  weight: (x: number) => number;
  support: number;
}

const CHANNELS = 3;
const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

// Pillow writes 0.54f and 0.46f: single-precision constants promoted to double.
const HAMMING_A = Math.fround(0.54);
const HAMMING_B = Math.fround(0.46);

const FILTERS: Record<number, Filter> = {
  [PilResample.BOX]: { support: 0.5, weight: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  [PilResample.BILINEAR]: {
    support: 1,
    weight: (x) => {
      const a = Math.abs(x);
      return a < 1 ? 1 - a : 0;
    },
  },
  [PilResample.HAMMING]: {
    support: 1,
    weight: (x) => {
      const a = Math.abs(x);
      if (a === 0) return 1;
      if (a >= 1) return 0;
      const px = a * Math.PI;
      return (Math.sin(px) / px) * (HAMMING_A + HAMMING_B * Math.cos(px));
    },
  },
  [PilResample.BICUBIC]: {
    support: 2,
    weight: (x) => {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
  [PilResample.LANCZOS]: { support: 3, weight: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

interface Coefficients {
  ksize: number;
  first: Int32Array; // [outSize] first source index
  count: Int32Array; // [outSize] number of source samples
  weights: Int32Array; // [outSize, ksize] fixed point
}

function coefficients(inSize: number, outSize: number, filter: Filter): Coefficients {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.weight((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0 ? k[x]! / ww : k[x]!;
      weights[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    first[xx] = xmin;
    count[xx] = xmax;
  }
  return { ksize, first, count, weights };
}

function clip8(sum: number): number {
  const v = Math.floor(sum / ONE); // == (int)sum >> 22: sums stay far inside int32
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Rows [rowStart, rowStart + rows) of `src`, resampled horizontally to width `outW`. */
function horizontal(src: RgbImage, outW: number, rowStart: number, rows: number, c: Coefficients): RgbImage {
  const out = new Uint8Array(outW * rows * CHANNELS);
  const { ksize, first, count, weights } = c;
  for (let y = 0; y < rows; y++) {
    const inRow = (y + rowStart) * src.width * CHANNELS;
    for (let xx = 0; xx < outW; xx++) {
      const base = xx * ksize;
      let s0 = HALF, s1 = HALF, s2 = HALF;
      for (let x = 0; x < count[xx]!; x++) {
        const w = weights[base + x]!;
        const p = inRow + (x + first[xx]!) * CHANNELS;
        s0 += src.data[p]! * w;
        s1 += src.data[p + 1]! * w;
        s2 += src.data[p + 2]! * w;
      }
      const o = (y * outW + xx) * CHANNELS;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return { width: outW, height: rows, data: out };
}

/** Vertical pass; `rowOffset` is the first source row that `src` holds. */
function vertical(src: RgbImage, outH: number, rowOffset: number, c: Coefficients): RgbImage {
  const w = src.width;
  const out = new Uint8Array(w * outH * CHANNELS);
  const { ksize, first, count, weights } = c;
  for (let yy = 0; yy < outH; yy++) {
    const base = yy * ksize;
    const ymin = first[yy]! - rowOffset;
    for (let xx = 0; xx < w; xx++) {
      let s0 = HALF, s1 = HALF, s2 = HALF;
      for (let y = 0; y < count[yy]!; y++) {
        const k = weights[base + y]!;
        const p = ((y + ymin) * w + xx) * CHANNELS;
        s0 += src.data[p]! * k;
        s1 += src.data[p + 1]! * k;
        s2 += src.data[p + 2]! * k;
      }
      const o = (yy * w + xx) * CHANNELS;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return { width: w, height: outH, data: out };
}

/** Source index per output index for NEAREST: Pillow accumulates the step in double. */
function nearestIndex(inSize: number, outSize: number): Int32Array {
  const step = inSize / outSize;
  const index = new Int32Array(outSize);
  let pos = step * 0.5;
  for (let i = 0; i < outSize; i++) {
    index[i] = pos < 0 ? -1 : Math.min(Math.trunc(pos), inSize - 1);
    pos += step;
  }
  return index;
}

function nearest(src: RgbImage, outW: number, outH: number): RgbImage {
  const xs = nearestIndex(src.width, outW);
  const ys = nearestIndex(src.height, outH);
  const out = new Uint8Array(outW * outH * CHANNELS);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const p = (ys[y]! * src.width + xs[x]!) * CHANNELS;
      const o = (y * outW + x) * CHANNELS;
      out[o] = src.data[p]!;
      out[o + 1] = src.data[p + 1]!;
      out[o + 2] = src.data[p + 2]!;
    }
  }
  return { width: outW, height: outH, data: out };
}

/** `PIL.Image.resize((outW, outH), resample)` on an RGB image (reducing_gap=None, full box). */
export function pilResize(src: RgbImage, outW: number, outH: number, resample: number): RgbImage {
  if (outW === src.width && outH === src.height) return { ...src, data: src.data.slice() };
  if (resample === PilResample.NEAREST) return nearest(src, outW, outH);
  const filter = FILTERS[resample];
  if (!filter) throw new RangeError(`unknown PIL resampling filter ${resample}`);
  const needH = outW !== src.width;
  const needV = outH !== src.height;
  const vert = coefficients(src.height, outH, filter);
  // Pillow >= 11.2: when the height shrinks by more than twice as many pixels as the width,
  // the vertical pass runs first (the two orders round differently).
  const shrinkH = src.height - outH;
  if (shrinkH > 0 && shrinkH > (src.width - outW) * 2) {
    const tall = needV ? vertical(src, outH, 0, vert) : src;
    return needH ? horizontal(tall, outW, 0, outH, coefficients(src.width, outW, filter)) : tall;
  }
  if (!needH) return vertical(src, outH, 0, vert);
  // Only rows first[0] .. first[last] + count[last] feed the vertical pass.
  const rowStart = vert.first[0]!;
  const rowEnd = vert.first[outH - 1]! + vert.count[outH - 1]!;
  const wide = horizontal(src, outW, rowStart, rowEnd - rowStart, coefficients(src.width, outW, filter));
  return needV ? vertical(wide, outH, rowStart, vert) : wide;
}
