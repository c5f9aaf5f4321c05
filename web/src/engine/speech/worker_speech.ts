// The worker's speech state: one loaded Whisper model (worker.ts routes loadSpeech / transcribe /
// speechFeatures here, so the shared worker file only gains three cases).

import { ModelNotFoundError, ModelNotLoadedError } from "../errors";
import type { LoadOptionsWire, SpeechLoadResult } from "../protocol";
import type { Runtime } from "../runtime/runtime";
import { fetchManifest, findModel, type ProgressCallback } from "../storage/store";
import { WhisperModel } from "./whisper";

let model: WhisperModel | null = null;

export function speechModel(): WhisperModel {
  if (!model) throw new ModelNotLoadedError("no speech model is loaded", "call engine.loadSpeech(id) first");
  return model;
}

export async function loadSpeech(msg: { speech: string; options: LoadOptionsWire }, runtime: Runtime,
  onProgress: ProgressCallback): Promise<SpeechLoadResult> {
  const start = performance.now();
  const entry = findModel(await fetchManifest(), msg.speech);
  if (!entry.speech) throw new ModelNotFoundError(`${entry.id} is not a speech model (task ${entry.task})`);
  const loaded = await WhisperModel.load(entry, runtime,
    { variant: msg.options.variant, maxBytes: msg.options.maxBytes, onProgress });
  await model?.dispose();
  model = loaded;
  return { runtime: runtime.name, runtimeReason: runtime.reason, threads: runtime.threads, speech: loaded.info,
    loadMs: performance.now() - start };
}

export async function disposeSpeech(): Promise<void> {
  await model?.dispose();
  model = null;
}
