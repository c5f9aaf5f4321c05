// What every model loader does with the manifest's files: choose a variant, check it fits this
// runtime, and read its JSON files.

import { ModelNotFoundError, ModelTooLargeError } from "../errors";
import type { FileEntry, ModelEntry } from "../manifest.gen";
import { fileEntry } from "../storage/store";
import type { Runtime, RuntimeName } from "./runtime";

/** 32-bit WASM has 4 GiB of memory; the model bytes and the weights built from them both live there. */
export const DEFAULT_MAX_MODEL_BYTES = 2 * 1024 ** 3;

export function pickVariant(entry: ModelEntry, runtime: Runtime, requested?: string): string {
  const name = requested ?? entry.defaults[runtime.name] ?? Object.keys(entry.variants)[0];
  if (!name || !entry.variants[name]) {
    throw new ModelNotFoundError(`model ${entry.id} has no variant ${name ?? "(none)"}`,
      `choose one of: ${Object.keys(entry.variants).join(", ")}`);
  }
  return name;
}

export function checkSize(entry: ModelEntry, variant: string, bytes: number, largestFile: number, runtime: Runtime,
  maxBytes: number): void {
  const gib = (n: number) => `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (bytes > maxBytes) {
    throw new ModelTooLargeError(
      `${entry.id} (${variant}) needs ${gib(bytes)} of model files; this runtime allows ${gib(maxBytes)}`,
      "choose a smaller (quantized) variant or a smaller model");
  }
  if (runtime.maxBufferSize !== undefined && largestFile > runtime.maxBufferSize) {
    throw new ModelTooLargeError(
      `${entry.id} (${variant}) has a ${gib(largestFile)} file; this GPU's largest buffer is ${gib(runtime.maxBufferSize)}`,
      "choose a quantized variant, or use the WASM runtime");
  }
}

export function decodeJson<T>(bytes: Uint8Array | undefined, path: string): T {
  if (!bytes) throw new ModelNotFoundError(`${path} was not downloaded`);
  return JSON.parse(new TextDecoder().decode(bytes)) as T;
}

/** Config files by role, as the exporter lists them in the manifest (contract/manifest.py CONFIG_FILES). */
export type ConfigRole = "tokenizer" | "tokenizer_config" | "config" | "preprocessor" | "chat_template" | "generation_config";

/** The manifest's file for a config role; undefined when the model has none. */
export function optionalConfig(entry: ModelEntry, role: ConfigRole): FileEntry | undefined {
  const path = entry.configs?.[role];
  return path === undefined ? undefined : fileEntry(entry, path);
}

/** The manifest's file for a config role the loader cannot do without. */
export function requiredConfig(entry: ModelEntry, role: ConfigRole): FileEntry {
  const file = optionalConfig(entry, role);
  if (!file) {
    throw new ModelNotFoundError(`${entry.id} lists no ${role} file in the manifest`,
      "re-export the model: the exporter names its config files by role");
  }
  return file;
}

/** The config roles the loaders read (vision: preprocessor + tokenizer; chat: tokenizer + template). */
const LOADED_CONFIGS: readonly ConfigRole[] = ["preprocessor", "tokenizer", "tokenizer_config", "chat_template"];
/** The towers a CLIP-family load reads (the variant's combined "model" file is for other tools). */
const VISION_ROLES = ["vision_model", "text_model"];

/**
 * What loading `entry` with its default variant on `runtime` downloads: a CLIP-family model's two
 * towers, or the variant's files with a chat model's external data parts (`<model>.onnx_data*`),
 * and the config files the loaders read. The model pickers show its size and whether it is cached.
 */
export function defaultDownload(entry: ModelEntry, runtime: RuntimeName): { variant: string; files: FileEntry[] } {
  const variant = entry.defaults[runtime] ?? Object.keys(entry.variants)[0] ?? "";
  const roles = entry.variants[variant]?.files ?? {};
  const paths = entry.vision ? VISION_ROLES.map((role) => roles[role]) : Object.values(roles);
  const configs = LOADED_CONFIGS.map((role) => entry.configs?.[role]);
  const isData = (path: string) => entry.llm !== undefined &&
    paths.some((p) => p?.endsWith(".onnx") && path.startsWith(`${p}_data`));
  const files = entry.files.filter((f) => paths.includes(f.path) || configs.includes(f.path) || isData(f.path));
  return { variant, files };
}
