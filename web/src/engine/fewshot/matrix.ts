// Dense row-major float64 matrices: just the products few-shot fitting needs. Embeddings arrive as
// Float32Array rows; everything inside is float64 (JS numbers), so the browser and the numpy
// reference (reference/fewshot.py) differ only by summation order.

export interface Matrix {
  rows: number;
  cols: number;
  data: Float64Array; // [rows * cols]
}

export function zeros(rows: number, cols: number): Matrix {
  return { rows, cols, data: new Float64Array(rows * cols) };
}

/** Float32 rows (all the same length) -> [rows, cols] float64. */
export function fromRows(rows: Float32Array[], cols: number): Matrix {
  const m = zeros(rows.length, cols);
  rows.forEach((r, i) => m.data.set(r, i * cols));
  return m;
}

/** a [m, k] @ b[n, k]^T -> [m, n]. */
export function matmulT(a: Matrix, b: Matrix): Matrix {
  const out = zeros(a.rows, b.rows);
  const k = a.cols;
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < b.rows; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a.data[i * k + t]! * b.data[j * k + t]!;
      out.data[i * b.rows + j] = s;
    }
  }
  return out;
}

/** The sub-matrix of the given rows and columns (index lists). */
export function pick(a: Matrix, rows: number[], cols: number[]): Matrix {
  const out = zeros(rows.length, cols.length);
  rows.forEach((r, i) => cols.forEach((c, j) => { out.data[i * cols.length + j] = a.data[r * a.cols + c]!; }));
  return out;
}

export function scale(a: Matrix, factor: number): Matrix {
  return { rows: a.rows, cols: a.cols, data: a.data.map((v) => v * factor) };
}

/** One-hot [n, classes] of class indices. */
export function oneHot(labels: ArrayLike<number>, classes: number): Matrix {
  const out = zeros(labels.length, classes);
  for (let i = 0; i < labels.length; i++) out.data[i * classes + labels[i]!] = 1;
  return out;
}

/** log softmax of row i of a [n, C] matrix, into `out` [C]. */
export function logSoftmaxRow(a: Matrix, i: number, out: Float64Array): Float64Array {
  const row = a.data.subarray(i * a.cols, (i + 1) * a.cols);
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const log = Math.log(sum);
  for (let c = 0; c < a.cols; c++) out[c] = row[c]! - max - log;
  return out;
}

/** Row-wise softmax of [n, C]. */
export function softmaxRows(a: Matrix): Matrix {
  const out = zeros(a.rows, a.cols);
  const row = new Float64Array(a.cols);
  for (let i = 0; i < a.rows; i++) {
    logSoftmaxRow(a, i, row);
    for (let c = 0; c < a.cols; c++) out.data[i * a.cols + c] = Math.exp(row[c]!);
  }
  return out;
}

/** Index of the largest entry of row i; the first on ties (as numpy.argmax). */
export function argmaxRow(a: Matrix, i: number): number {
  let best = 0;
  for (let c = 1; c < a.cols; c++) if (a.data[i * a.cols + c]! > a.data[i * a.cols + best]!) best = c;
  return best;
}
