// Rewrites a model's dynamically quantized int8 products (onnxruntime quantize_dynamic output) into
// plain fp32 MatMul / Conv over weights dequantized once here.
//
// Why: onnxruntime-web's WASM build runs DynamicQuantizeLinear + MatMulInteger/ConvInteger far
// slower than its fp32 GEMM (CLIP ViT-B/32 int8 measured slower than the fp32 file there), so the
// int8 file is the smallest download but the slowest run. Expanding its weights at load keeps the
// download and gives fp32 speed, at 4 bytes a weight in memory. It also drops the per-run
// activation quantization: embeddings no longer depend on batch-mates, and they move closer to
// the fp32 model (only weight rounding is left). runtime/onnx_int8_expand.py does the same in
// Python for the exporter's parity gate and the browser test's reference.
//
// The pattern quantize_dynamic writes, per product (x fp32, W int8/uint8 constant):
//   (xq, xs, xzp) = DynamicQuantizeLinear(x)
//   y = MatMulInteger(xq, Wq, xzp, Wzp)  |  ConvInteger(xq, Wq, xzp, Wzp) {conv attributes}
//   out = Mul(Cast(y, to=float), Mul(xs, Ws))
// becomes out = MatMul(x, (Wq - Wzp) * Ws)  |  Conv(x, (Wq - Wzp) * Ws) {same attributes}.
// Ws/Wzp: one value, or one per output column (MatMul, [K, N] -> N) / output channel (Conv).

import {
  FLOAT, fields, floats, floatTensor, type Initializer, MAX_MODEL_BYTES, type Node, parseGraph, readVarint, rewriteGraph,
  UINT8, Writer,
} from "./onnx_dequant";

const INT8 = 3;
const PRODUCTS = new Set(["MatMulInteger", "ConvInteger"]);

export interface Int8ExpandResult {
  bytes: Uint8Array;
  /** MatMulInteger / ConvInteger nodes rewritten to fp32 MatMul / Conv. */
  products: number;
  /** DynamicQuantizeLinear nodes still in the graph (0: no output depends on its batch-mates). */
  dynamicQuantizeLeft: number;
}

/** An int32 varint (negatives take 10 bytes; their low 32 bits are the value). */
function readInt32(buf: Uint8Array, pos: number): [number, number] {
  let low = 0;
  for (let shift = 0; ; shift += 7) {
    const byte = buf[pos++]!;
    if (shift < 32) low |= (byte & 0x7f) << shift;
    if (byte < 0x80) return [low | 0, pos];
  }
}

/** An integer tensor's values (int8 or uint8: raw_data, or int32_data as small ones are written) and dims. */
function integers(buf: Uint8Array, init: Initializer): { values: Int8Array | Uint8Array; dims: number[] } | null {
  if (init.dataType !== INT8 && init.dataType !== UINT8) return null;
  const dims: number[] = [];
  let values: Int8Array | Uint8Array | null = null;
  const int32s: number[] = [];
  for (const f of fields(buf, init.field.value, init.field.valueEnd)) {
    if (f.no === 1 && f.wire === 0) dims.push(f.varint);
    else if (f.no === 1) for (let p = f.value; p < f.valueEnd;) { // packed dims
      const [d, next] = readVarint(buf, p);
      dims.push(d);
      p = next;
    }
    else if (f.no === 5 && f.wire === 2) for (let p = f.value; p < f.valueEnd;) { // packed int32_data
      const [v, next] = readInt32(buf, p);
      int32s.push(v);
      p = next;
    }
    else if (f.no === 5) int32s.push(readInt32(buf, f.start + 1)[0]);
    else if (f.no === 9) {
      const b = buf.subarray(f.value, f.valueEnd);
      values = init.dataType === INT8 ? new Int8Array(b.buffer, b.byteOffset, b.byteLength) : b;
    } else if (f.no === 14 && f.varint === 1) return null; // external data
  }
  values ??= init.dataType === INT8 ? Int8Array.from(int32s) : Uint8Array.from(int32s);
  return { values, dims };
}

interface Match {
  product: Node;
  /** Cast and output Mul: replaced by the fp32 node. */
  replaced: Node[];
  /** The scale Mul and DynamicQuantizeLinear: dropped when nothing else reads them. */
  candidates: Node[];
  x: string;
  out: string;
  weight: Float32Array;
  dims: number[];
}

/** The fp32 weight of one quantized product, or null when the node is not in the expected form. */
function match(node: Node, producer: Map<string, Node>, consumers: Map<string, Node[]>,
  inits: Map<string, Initializer>, buf: Uint8Array): Match | null {
  const [aq, wName, azp, wzpName] = node.inputs;
  const dql = aq ? producer.get(aq) : undefined;
  if (!dql || dql.opType !== "DynamicQuantizeLinear" || dql.domain !== "" || azp !== dql.outputs[2]) return null;
  const wInit = wName ? inits.get(wName) : undefined;
  const w = wInit ? integers(buf, wInit) : null;
  const zpInit = wzpName ? inits.get(wzpName) : undefined;
  const zp = zpInit ? integers(buf, zpInit) : null;
  if (!w || (wzpName && !zp)) return null;
  const cast = consumers.get(node.outputs[0]!);
  if (cast?.length !== 1 || cast[0]!.opType !== "Cast" || cast[0]!.ints.get("to") !== FLOAT) return null;
  const mul = consumers.get(cast[0]!.outputs[0]!);
  if (mul?.length !== 1 || mul[0]!.opType !== "Mul" || mul[0]!.inputs.length !== 2) return null;
  const scaleName = mul[0]!.inputs.find((i) => i !== cast[0]!.outputs[0]);
  const scaleMul = scaleName ? producer.get(scaleName) : undefined;
  if (!scaleMul || scaleMul.opType !== "Mul" || !scaleMul.inputs.includes(dql.outputs[1]!)) return null;
  const wsName = scaleMul.inputs.find((i) => i !== dql.outputs[1]);
  const wsInit = wsName ? inits.get(wsName) : undefined;
  const ws = wsInit ? floats(wsInit) : null;
  if (!ws) return null;

  // Channels the scale / zero point may run along: MatMul's last weight axis, Conv's first.
  const conv = node.opType === "ConvInteger";
  if (conv ? w.dims.length < 3 : w.dims.length !== 2) return null;
  const channels = conv ? w.dims[0]! : w.dims[1]!;
  const perChannel = (n: number) => n === 1 || n === channels;
  if (!perChannel(ws.length) || (zp && !perChannel(zp.values.length))) return null;
  if (conv && ws.length !== 1) return null; // a per-channel conv scale would need a reshape quantize_dynamic does not write
  const total = w.values.length;
  if (total !== w.dims.reduce((a, b) => a * b, 1)) return null;
  // Per-channel zero point and scale (broadcast when per tensor); loops without a division per weight.
  const zps = Float32Array.from({ length: channels }, (_, c) => (zp ? zp.values[zp.values.length === 1 ? 0 : c]! : 0));
  const scales = Float32Array.from({ length: channels }, (_, c) => ws[ws.length === 1 ? 0 : c]!);
  const weight = new Float32Array(total);
  const values = w.values;
  const inner = total / channels; // Conv [O, ...]: a channel's run of weights; MatMul [K, N]: the rows
  for (let r = 0, i = 0; r < (conv ? channels : inner); r++) {
    for (let j = 0; j < (conv ? inner : channels); j++, i++) {
      const c = conv ? r : j;
      weight[i] = (values[i]! - zps[c]!) * scales[c]!;
    }
  }
  return { product: node, replaced: [cast[0]!, mul[0]!], candidates: [scaleMul, dql], x: dql.inputs[0]!, out: mul[0]!.outputs[0]!,
    weight, dims: w.dims };
}

/** MatMul / Conv node bytes; Conv keeps the ConvInteger's attributes (kernel, strides, pads, group...). */
function fp32Node(buf: Uint8Array, m: Match, weightName: string): Uint8Array {
  const w = new Writer();
  w.string(1, m.x);
  w.string(1, weightName);
  w.string(2, m.out);
  w.string(3, `${m.product.name}/Expanded`);
  w.string(4, m.product.opType === "ConvInteger" ? "Conv" : "MatMul");
  for (const f of fields(buf, m.product.field.value, m.product.field.valueEnd)) {
    if (f.no === 5) w.raw(buf.subarray(f.start, f.end)); // attributes
  }
  return w.finish();
}

/**
 * The model with fp32 MatMul/Conv in place of its dynamic int8 products (the same bytes when none
 * match); null when the graph cannot be rewritten here (subgraphs) or the result would be too large.
 */
export function expandInt8Weights(model: Uint8Array): Int8ExpandResult | null {
  const graph = parseGraph(model);
  if (!graph) return null;
  const { nodes, inits } = graph;
  const products = nodes.filter((n) => PRODUCTS.has(n.opType) && n.domain === "");
  const dynamicQuantize = (kept: (n: Node) => boolean) =>
    nodes.filter((n) => kept(n) && n.opType === "DynamicQuantizeLinear").length;
  if (products.length === 0) return { bytes: model, products: 0, dynamicQuantizeLeft: dynamicQuantize(() => true) };
  const producer = new Map<string, Node>();
  const consumers = new Map<string, Node[]>();
  for (const n of nodes) {
    for (const o of n.outputs) producer.set(o, n);
    for (const i of n.inputs) consumers.set(i, [...consumers.get(i) ?? [], n]);
  }

  const live = new Set(nodes);
  let newBytes = model.length;
  const replacement = new Map<Node, Uint8Array>();
  const newInits: Uint8Array[] = [];
  const candidates = new Set<Node>();
  for (const node of products) {
    const m = match(node, producer, consumers, inits, model);
    if (!m) continue; // left as it is: still correct, just not faster
    newBytes += m.weight.byteLength;
    if (newBytes > MAX_MODEL_BYTES) return null;
    const weightName = `${node.outputs[0]}/expanded_weight`;
    newInits.push(floatTensor(weightName, m.dims, m.weight));
    replacement.set(node, fp32Node(model, m, weightName));
    m.candidates.forEach((c) => candidates.add(c));
    m.replaced.forEach((r) => live.delete(r));
  }
  if (replacement.size === 0) return { bytes: model, products: 0, dynamicQuantizeLeft: dynamicQuantize(() => true) };

  // Drop the candidates nothing live reads any more (a DQL shared by q/k/v goes once all three are
  // rewritten), then the initializers only dropped nodes read.
  const liveInputs = () => {
    const used = new Set(graph.outputs);
    for (const n of live) for (const i of replacement.has(n) ? [] : n.inputs) used.add(i);
    for (const n of replacement.keys()) used.add(producer.get(n.inputs[0]!)!.inputs[0]!); // the fp32 x
    return used;
  };
  for (let changed = true; changed;) {
    changed = false;
    const used = liveInputs();
    for (const c of candidates) {
      if (live.has(c) && !c.outputs.some((o) => used.has(o)) && !replacement.has(c)) {
        live.delete(c);
        changed = true;
      }
    }
  }
  const used = liveInputs();
  const dropped = new Set([...inits.keys()].filter((name) => !used.has(name) && !graph.inputs.has(name)));
  const keptBefore = new Set(nodes.flatMap((n) => n.inputs));
  for (const name of [...dropped]) if (!keptBefore.has(name)) dropped.delete(name); // only what the rewrite orphaned

  // A node is rewritten, kept while live, else dropped.
  const rewrite = (node: Node) => replacement.get(node) ?? (live.has(node) ? undefined : null);
  return { bytes: rewriteGraph(model, graph, rewrite, dropped, newInits), products: replacement.size,
    dynamicQuantizeLeft: dynamicQuantize((n) => live.has(n)) };
}
