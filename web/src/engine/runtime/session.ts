// The one place an onnxruntime-web session is created: the runtime's execution providers, full
// graph optimization, errors only in the console, and a named error with a fix when it fails.

import type * as Ort from "onnxruntime-web";
import { InferenceError } from "../errors";
import type { Runtime } from "./runtime";

/** A session for the model `bytes` (`what` names it in errors); `extra` adds model-specific options. */
export async function createSession(runtime: Runtime, bytes: Uint8Array, what: string,
  extra: Ort.InferenceSession.SessionOptions = {}): Promise<Ort.InferenceSession> {
  try {
    return await runtime.ort.InferenceSession.create(bytes, {
      executionProviders: runtime.executionProviders,
      graphOptimizationLevel: "all",
      // Errors only: onnxruntime's C++ warnings (e.g. shape ops placed on the CPU next to WebGPU)
      // would reach the console as errors.
      logSeverityLevel: 3,
      ...extra,
    });
  } catch (err) {
    throw new InferenceError(`onnxruntime-web (${runtime.name}) cannot load ${what}: ${String(err)}`,
      runtime.name === "webgpu" ? "retry with the WASM runtime" : "re-export the model");
  }
}
