// Rewrites a model's MatMulNBits nodes (block-quantized weights) into plain MatMuls over fp32
// weights, dequantized once here instead of on every call.
//
// Why: onnxruntime-web's WASM build has no n-bit GEMM kernel, so its MatMulNBits falls back to
// dequantizing the whole weight matrix on every run (onnxruntime's ComputeBUnpacked) and then
// running an fp32 GEMM: decoding one token re-dequantizes every weight of the model. Dequantizing
// once gives that same fp32 GEMM without the per-token work, at 4x the weight memory. Parts that
// a Sum adds up (Q8_0 carried as two 4-bit parts) fold into one weight: one GEMM, not two.
//
// The ONNX protobuf is edited at the wire level: only GraphProto's node and initializer lists
// change; every other field is copied byte for byte.

const MS_DOMAIN = "com.microsoft";
export const FLOAT = 1;
export const UINT8 = 2;
const FLOAT16 = 10;
// Protobuf messages must stay under 2 GiB; leave room for everything that is not a weight.
export const MAX_MODEL_BYTES = 1.8e9;

/** A field's location in the buffer: [start, end) covers tag and value; value/valueEnd the payload. */
export interface Field {
  no: number;
  wire: number;
  start: number;
  end: number;
  value: number;
  valueEnd: number;
  varint: number;
}

export function readVarint(buf: Uint8Array, pos: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  for (;;) {
    const byte = buf[pos++]!;
    value += (byte & 0x7f) * scale; // Numbers, not 32-bit ints: lengths and dims may pass 2^31
    if (byte < 0x80) return [value, pos];
    scale *= 128;
  }
}

export function* fields(buf: Uint8Array, start = 0, end = buf.length): Generator<Field> {
  let pos = start;
  while (pos < end) {
    const fieldStart = pos;
    const [tag, afterTag] = readVarint(buf, pos);
    const no = Math.floor(tag / 8);
    const wire = tag & 7;
    let value = afterTag;
    let valueEnd = afterTag;
    let varint = 0;
    if (wire === 0) [varint, valueEnd] = readVarint(buf, afterTag);
    else if (wire === 1) valueEnd = afterTag + 8;
    else if (wire === 5) valueEnd = afterTag + 4;
    else if (wire === 2) {
      const [length, next] = readVarint(buf, afterTag);
      value = next;
      valueEnd = next + length;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
    pos = valueEnd;
    yield { no, wire, start: fieldStart, end: valueEnd, value, valueEnd, varint };
  }
}

const utf8 = new TextDecoder();
export const str = (buf: Uint8Array, f: Field) => utf8.decode(buf.subarray(f.value, f.valueEnd));

export interface Node {
  field: Field;
  opType: string;
  domain: string;
  name: string;
  inputs: string[];
  outputs: string[];
  ints: Map<string, number>;
  hasSubgraph: boolean;
}

export function parseNode(buf: Uint8Array, field: Field): Node {
  const node: Node = { field, opType: "", domain: "", name: "", inputs: [], outputs: [], ints: new Map(), hasSubgraph: false };
  for (const f of fields(buf, field.value, field.valueEnd)) {
    if (f.no === 1) node.inputs.push(str(buf, f));
    else if (f.no === 2) node.outputs.push(str(buf, f));
    else if (f.no === 3) node.name = str(buf, f);
    else if (f.no === 4) node.opType = str(buf, f);
    else if (f.no === 7) node.domain = str(buf, f);
    else if (f.no === 5) {
      let name = "";
      let int: number | undefined;
      for (const a of fields(buf, f.value, f.valueEnd)) {
        if (a.no === 1) name = str(buf, a);
        else if (a.no === 3) int = a.varint;
        else if (a.no === 6 || a.no === 11) node.hasSubgraph = true; // g / graphs
      }
      if (int !== undefined) node.ints.set(name, int);
    }
  }
  return node;
}

export interface Initializer {
  field: Field;
  name: string;
  dataType: number;
  /** raw_data, or float_data / int32_data re-packed little-endian; null when stored externally. */
  bytes: Uint8Array | null;
}

export function parseInitializer(buf: Uint8Array, field: Field): Initializer {
  let name = "";
  let dataType = 0;
  let raw: Uint8Array | null = null;
  let packed: Uint8Array | null = null;
  let external = false;
  for (const f of fields(buf, field.value, field.valueEnd)) {
    if (f.no === 8) name = str(buf, f);
    else if (f.no === 2) dataType = f.varint;
    else if (f.no === 9) raw = buf.subarray(f.value, f.valueEnd);
    else if (f.no === 4 && f.wire === 2) packed = buf.subarray(f.value, f.valueEnd); // packed float_data
    else if (f.no === 5 && f.wire === 2) { // packed int32_data: uint8 values, one varint each
      const values: number[] = [];
      for (let p = f.value; p < f.valueEnd;) {
        const [v, next] = readVarint(buf, p);
        values.push(v);
        p = next;
      }
      packed = dataType === UINT8 ? Uint8Array.from(values) : null;
    } else if (f.no === 14 && f.varint === 1) external = true;
  }
  return { field, name, dataType, bytes: external ? null : raw ?? packed };
}

export function floats(init: Initializer): Float32Array | null {
  const b = init.bytes;
  if (!b) return null;
  if (init.dataType === FLOAT) {
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  }
  if (init.dataType === FLOAT16) {
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    return Float32Array.from({ length: b.byteLength / 2 }, (_, i) => halfToFloat(view.getUint16(2 * i, true)));
  }
  return null;
}

/** float16 bits -> number. */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * W [K, N] (row-major, as MatMul's B) of one MatMulNBits node, added into `out`; false when the
 * node uses something this rewrite does not handle (bits other than 4/8, g_idx, bias, external data).
 * B: uint8 [N, k_blocks, block_size * bits / 8]; scales [N, k_blocks]; zero points: packed uint8
 * (per row, ceil(k_blocks * bits / 8) bytes, low bits first), or float [N, k_blocks], default 2^(bits-1).
 */
function addDequantized(node: Node, inits: Map<string, Initializer>, out: Float32Array): boolean {
  const K = node.ints.get("K");
  const N = node.ints.get("N");
  const bits = node.ints.get("bits") ?? 4;
  const blockSize = node.ints.get("block_size");
  if (!K || !N || !blockSize || (bits !== 4 && bits !== 8)) return false;
  if (node.inputs.length > 4 && node.inputs.slice(4).some((name) => name !== "")) return false; // g_idx, bias
  const b = inits.get(node.inputs[1]!)?.bytes;
  const scalesInit = inits.get(node.inputs[2]!);
  const scales = scalesInit ? floats(scalesInit) : null;
  const zpInit = node.inputs[3] ? inits.get(node.inputs[3]) : undefined;
  if (!b || !scales || (node.inputs[3] && !zpInit?.bytes)) return false;
  const kBlocks = Math.ceil(K / blockSize);
  const blob = (blockSize * bits) / 8;
  if (b.length !== N * kBlocks * blob || scales.length !== N * kBlocks) return false;
  const floatZp = zpInit && zpInit.dataType !== UINT8 ? floats(zpInit) : null;
  const packedZp = zpInit && zpInit.dataType === UINT8 ? zpInit.bytes! : null;
  const zpRow = Math.ceil((kBlocks * bits) / 8);
  const defaultZp = 2 ** (bits - 1);
  const mask = (1 << bits) - 1;
  for (let n = 0; n < N; n++) {
    for (let kb = 0; kb < kBlocks; kb++) {
      const scale = scales[n * kBlocks + kb]!;
      let zp = defaultZp;
      if (floatZp) zp = floatZp[n * kBlocks + kb]!;
      else if (packedZp && bits === 8) zp = packedZp[n * zpRow + kb]!;
      else if (packedZp) zp = (packedZp[n * zpRow + (kb >> 1)]! >> ((kb & 1) * 4)) & mask;
      const base = (n * kBlocks + kb) * blob;
      const kEnd = Math.min(blockSize, K - kb * blockSize);
      for (let i = 0; i < kEnd; i++) {
        const q = bits === 8 ? b[base + i]! : (b[base + (i >> 1)]! >> ((i & 1) * 4)) & mask;
        out[(kb * blockSize + i) * N + n] += (q - zp) * scale;
      }
    }
  }
  return true;
}

export class Writer {
  private readonly parts: Uint8Array[] = [];
  length = 0;

  raw(bytes: Uint8Array): void {
    this.parts.push(bytes);
    this.length += bytes.length;
  }

  varint(value: number): void {
    const out: number[] = [];
    while (value >= 0x80) {
      out.push((value % 128) | 0x80);
      value = Math.floor(value / 128);
    }
    out.push(value);
    this.raw(Uint8Array.from(out));
  }

  bytes(no: number, payload: Uint8Array): void {
    this.varint(no * 8 + 2);
    this.varint(payload.length);
    this.raw(payload);
  }

  string(no: number, text: string): void {
    this.bytes(no, new TextEncoder().encode(text));
  }

  int(no: number, value: number): void {
    this.varint(no * 8);
    this.varint(value);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let pos = 0;
    for (const part of this.parts) {
      out.set(part, pos);
      pos += part.length;
    }
    return out;
  }
}

function matMulNode(name: string, a: string, weight: string, output: string): Uint8Array {
  const w = new Writer();
  w.string(1, a);
  w.string(1, weight);
  w.string(2, output);
  w.string(3, name);
  w.string(4, "MatMul");
  return w.finish();
}

export function floatTensor(name: string, dims: number[], data: Float32Array): Uint8Array {
  const w = new Writer();
  for (const d of dims) w.int(1, d);
  w.int(2, FLOAT);
  w.string(8, name);
  w.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return w.finish();
}

/** A float tensor whose bytes live in external file `location` at [offset, offset + length). */
function externalFloatTensor(name: string, dims: number[], location: string, offset: number, length: number): Uint8Array {
  const w = new Writer();
  for (const d of dims) w.int(1, d);
  w.int(2, FLOAT);
  w.string(8, name);
  for (const [key, value] of [["location", location], ["offset", String(offset)], ["length", String(length)]]) {
    const entry = new Writer(); // StringStringEntryProto
    entry.string(1, key!);
    entry.string(2, value!);
    w.bytes(13, entry.finish());
  }
  w.int(14, 1); // data_location: EXTERNAL
  return w.finish();
}

export interface DequantResult {
  bytes: Uint8Array;
  /** MatMulNBits nodes replaced, and how many MatMuls they became (parts of one weight fold). */
  nodes: number;
  matmuls: number;
  /** With `externalWeights`: the fp32 weights, one buffer the session gets as external data. */
  external: { path: string; data: Uint8Array } | null;
}

export interface DequantOptions {
  /**
   * Write the fp32 weights into one external-data buffer named this (the tensors point into it)
   * instead of inline in the protobuf. Load cost: the inline form is serialized into a ~4x larger
   * protobuf, copied into the WASM heap and parsed there, with its weights copied again into
   * tensors; external data skips the protobuf round trip (one copy of the weights fewer in JS and
   * in WASM, and no parse of them).
   */
  externalWeights?: string;
}

/** The model with fp32 MatMuls in place of its MatMulNBits; null when there are none or the result would be too large. */
export function dequantizeMatMulNBits(model: Uint8Array, options: DequantOptions = {}): DequantResult | null {
  const graph = parseGraph(model);
  if (!graph) return null;
  const { nodes, inits } = graph;
  const quantized = nodes.filter((n) => n.opType === "MatMulNBits" && n.domain === MS_DOMAIN);
  if (quantized.length === 0) return null;

  // Group parts that one Sum adds up: same activation, same shape, each output used only by that Sum.
  const uses = new Map<string, number>();
  for (const n of nodes) for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
  const producer = new Map(quantized.map((n) => [n.outputs[0]!, n]));
  const groups: Array<{ parts: Node[]; output: string; sum?: Node }> = [];
  const grouped = new Set<Node>();
  for (const sum of nodes.filter((n) => n.opType === "Sum" && n.domain === "")) {
    const parts = sum.inputs.map((i) => producer.get(i))
      .filter((p): p is Node => p !== undefined && uses.get(p.outputs[0]!) === 1);
    const first = parts[0];
    const same = parts.filter((p) => p.inputs[0] === first?.inputs[0] && p.ints.get("K") === first?.ints.get("K")
      && p.ints.get("N") === first?.ints.get("N"));
    if (same.length < 2) continue;
    groups.push({ parts: same, output: `${same[0]!.outputs[0]}/folded`, sum });
    same.forEach((p) => grouped.add(p));
  }
  for (const n of quantized) if (!grouped.has(n)) groups.push({ parts: [n], output: n.outputs[0]! });

  let newBytes = model.length;
  const replacement = new Map<Node, Uint8Array | null>(); // null: dropped (folded into another)
  const newInits: Uint8Array[] = [];
  const sumInputs = new Map<Node, string[]>();
  let matmuls = 0;
  let replacedNodes = 0;
  const shapeOf = (n: Node) => (n.ints.get("K") ?? 0) * (n.ints.get("N") ?? 0);
  // External weights: one buffer for all (sized for every group; a group that stays MatMulNBits
  // gives its room back), each weight dequantized straight into its place.
  const location = options.externalWeights;
  const external = location ? new Float32Array(groups.reduce((s, g) => s + shapeOf(g.parts[0]!), 0)) : null;
  let used = 0; // floats of `external` written
  for (const group of groups) {
    const head = group.parts[0]!;
    const K = head.ints.get("K") ?? 0;
    const N = head.ints.get("N") ?? 0;
    newBytes += K * N * 4;
    if (newBytes > MAX_MODEL_BYTES) return null;
    const weight = external ? external.subarray(used, used + K * N) : new Float32Array(K * N);
    if (!group.parts.every((p) => addDequantized(p, inits, weight))) { // left as MatMulNBits
      weight.fill(0);
      continue;
    }
    const weightName = `${head.outputs[0]}/dequantized_weight`;
    newInits.push(external && location
      ? externalFloatTensor(weightName, [K, N], location, used * 4, K * N * 4)
      : floatTensor(weightName, [K, N], weight));
    used += external ? K * N : 0;
    replacement.set(head, matMulNode(`${head.name}/Dequantized`, head.inputs[0]!, weightName, group.output));
    for (const p of group.parts.slice(1)) replacement.set(p, null);
    if (group.sum) {
      const partOutputs = new Set(group.parts.map((p) => p.outputs[0]!));
      const rest = group.sum.inputs.filter((i) => !partOutputs.has(i));
      sumInputs.set(group.sum, [group.output, ...rest]);
    }
    matmuls += 1;
    replacedNodes += group.parts.length;
  }
  if (replacedNodes === 0) return null;

  // Initializers that only the replaced nodes read are dropped (the embedding may share lm_head's).
  const remaining = new Map<string, number>();
  for (const n of nodes) {
    if (replacement.has(n)) continue;
    for (const i of n.inputs) remaining.set(i, (remaining.get(i) ?? 0) + 1);
  }
  const dropped = new Set<string>();
  for (const n of replacement.keys()) {
    for (const i of n.inputs.slice(1)) if (i && !remaining.has(i) && !graph.inputs.has(i) && inits.has(i)) dropped.add(i);
  }
  const rewrite = (node: Node) => {
    const swap = replacement.get(node);
    if (swap !== undefined) return swap;
    const inputs = sumInputs.get(node);
    return inputs ? rewriteInputs(model, node, inputs) : undefined;
  };

  const externalData = external && location
    ? { path: location, data: new Uint8Array(external.buffer, 0, used * 4) }
    : null;
  return { bytes: rewriteGraph(model, graph, rewrite, dropped, newInits), nodes: replacedNodes, matmuls,
    external: externalData };
}

/** A model's main graph, parsed for a weight rewrite (onnx_dequant.ts, onnx_int8_expand.ts). */
export interface Graph {
  /** GraphProto's fields, in order */
  fields: Field[];
  nodes: Node[];
  inits: Map<string, Initializer>;
  /** names of the graph's inputs and outputs */
  inputs: Set<string>;
  outputs: Set<string>;
}

/** null when the model has no graph or uses subgraphs (names used inside them are not tracked). */
export function parseGraph(model: Uint8Array): Graph | null {
  const graphField = [...fields(model)].find((f) => f.no === 7);
  if (!graphField) return null;
  const graphFields = [...fields(model, graphField.value, graphField.valueEnd)];
  const nodes = graphFields.filter((f) => f.no === 1).map((f) => parseNode(model, f));
  if (nodes.some((n) => n.hasSubgraph)) return null;
  const inits = new Map<string, Initializer>();
  for (const f of graphFields) {
    if (f.no !== 5) continue;
    const init = parseInitializer(model, f);
    inits.set(init.name, init);
  }
  const names = (no: number) => new Set(graphFields.filter((f) => f.no === no).map((f) => {
    const name = [...fields(model, f.value, f.valueEnd)].find((g) => g.no === 1);
    return name ? str(model, name) : "";
  }));
  return { fields: graphFields, nodes, inits, inputs: names(11), outputs: names(12) };
}

/**
 * The model with its graph rewritten: `node(n)` gives a node's new bytes, null to drop it, or
 * undefined to keep it as it is; initializers named in `dropped` go, `added` ones are appended.
 */
export function rewriteGraph(model: Uint8Array, graph: Graph, node: (n: Node) => Uint8Array | null | undefined,
  dropped: Set<string>, added: Uint8Array[]): Uint8Array {
  const nodeAt = new Map(graph.nodes.map((n) => [n.field.start, n]));
  const out = new Writer();
  for (const f of graph.fields) {
    if (f.no === 1) {
      const bytes = node(nodeAt.get(f.start)!);
      if (bytes) out.bytes(1, bytes);
      else if (bytes === undefined) out.raw(model.subarray(f.start, f.end));
    } else if (!(f.no === 5 && dropped.has(parseInitializer(model, f).name))) {
      out.raw(model.subarray(f.start, f.end));
    }
  }
  for (const t of added) out.bytes(5, t);
  return withGraph(model, out.finish());
}

/** The model's bytes with its graph (ModelProto field 7) replaced; every other field copied. */
function withGraph(model: Uint8Array, graph: Uint8Array): Uint8Array {
  const out = new Writer();
  for (const f of fields(model)) {
    if (f.no === 7) out.bytes(7, graph);
    else out.raw(model.subarray(f.start, f.end));
  }
  return out.finish();
}

/** The node's bytes with its input list replaced (other fields copied). */
function rewriteInputs(model: Uint8Array, node: Node, inputs: string[]): Uint8Array {
  const w = new Writer();
  for (const i of inputs) w.string(1, i);
  for (const f of fields(model, node.field.value, node.field.valueEnd)) if (f.no !== 1) w.raw(model.subarray(f.start, f.end));
  return w.finish();
}
