// Which onnxruntime-web build runs the models, and why: WebGPU when an adapter exists, else WASM
// (threads = hardwareConcurrency when the page is cross-origin isolated). Runs in the worker.

import type * as Ort from "onnxruntime-web";
import { WebGPUUnavailableError } from "../errors";

export type RuntimeName = "webgpu" | "wasm";
export type RuntimeRequest = "auto" | RuntimeName;

export interface RuntimeChoice {
  name: RuntimeName;
  reason: string;
  threads: number;
  /** Largest single GPU buffer, when on WebGPU (bytes). */
  maxBufferSize?: number;
}

export interface Runtime extends RuntimeChoice {
  ort: typeof Ort;
  executionProviders: string[];
}

interface GpuAdapterLike {
  limits: { maxBufferSize: number };
  features: ReadonlySet<string>;
  info?: { vendor?: string; architecture?: string; description?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
}

export async function findAdapter(): Promise<{ adapter: GpuAdapterLike | null; why: string }> {
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<GpuAdapterLike | null> } }).gpu;
  if (!gpu) return { adapter: null, why: "this browser has no WebGPU (navigator.gpu is missing)" };
  try {
    const adapter = await gpu.requestAdapter();
    return adapter ? { adapter, why: "" } : { adapter: null, why: "no WebGPU adapter (requestAdapter() returned null)" };
  } catch (err) {
    return { adapter: null, why: `WebGPU adapter request failed: ${String(err)}` };
  }
}

/** A software adapter (SwiftShader, Chromium's `isFallbackAdapter`): WebGPU there is far slower than WASM. */
export function isSoftwareAdapter(adapter: GpuAdapterLike): boolean {
  const info = adapter.info ?? {};
  return info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? /swiftshader/i.test(`${info.vendor} ${info.architecture} ${info.description}`);
}

function adapterName(adapter: GpuAdapterLike): string {
  const info = adapter.info ?? {};
  return [info.vendor, info.architecture, info.description].filter(Boolean).join(" ") || "unknown GPU";
}

function describeAdapter(adapter: GpuAdapterLike): string {
  const info = adapter.info ?? {};
  const software = isSoftwareAdapter(adapter);
  const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(" ") || "unknown GPU";
  return software ? `WebGPU adapter found: software adapter (${name}); expect it to be slow` : `WebGPU adapter found: ${name}`;
}

function wasmThreads(requested?: number): { threads: number; why: string } {
  if (!self.crossOriginIsolated) return { threads: 1, why: "1 thread: the page is not cross-origin isolated (COOP/COEP missing)" };
  const threads = requested ?? navigator.hardwareConcurrency ?? 1;
  return { threads, why: `${threads} thread${threads === 1 ? "" : "s"}` };
}

export async function chooseRuntime(request: RuntimeRequest, threads?: number): Promise<RuntimeChoice> {
  const wasm = wasmThreads(threads);
  if (request === "wasm") return { name: "wasm", reason: `WASM (${wasm.why}): requested`, threads: wasm.threads };
  const { adapter, why } = await findAdapter();
  if (adapter && request === "auto" && isSoftwareAdapter(adapter)) {
    return { name: "wasm", reason: `WASM (${wasm.why}): the only WebGPU adapter is a software one (${adapterName(adapter)}), `
      + "which is slower than WASM; choose WebGPU explicitly to use it anyway", threads: wasm.threads };
  }
  if (adapter) {
    return { name: "webgpu", reason: describeAdapter(adapter), threads: wasm.threads, maxBufferSize: adapter.limits.maxBufferSize };
  }
  if (request === "webgpu") {
    throw new WebGPUUnavailableError(`WebGPU was requested but ${why}`,
      "use runtime 'auto' to fall back to WASM, or enable WebGPU in the browser");
  }
  return { name: "wasm", reason: `WASM (${wasm.why}): ${why}, so the WASM fallback is used`, threads: wasm.threads };
}

/** Loads the onnxruntime-web build for the choice; its runtime files come from /ort/ (same origin). */
export async function startRuntime(choice: RuntimeChoice): Promise<Runtime> {
  const ort = choice.name === "webgpu" ? await import("onnxruntime-web/webgpu") : await import("onnxruntime-web/wasm");
  ort.env.wasm.wasmPaths = new URL(`${import.meta.env.BASE_URL}ort/`, self.location.origin).href;
  ort.env.wasm.numThreads = choice.threads;
  ort.env.logLevel = "error";
  return { ...choice, ort, executionProviders: [choice.name] };
}
