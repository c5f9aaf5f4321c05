// The model pickers (vision and chat) show each model's download size and whether this browser has
// it cached: "tiny-random-clip · CLIP (untrained) · 1.23 MB · cached".

import type { Engine, ModelDownload, RuntimeName } from "../engine/api";
import { megabytes } from "./storage";

export type CacheState = "cached" | "partly cached" | "not cached";

export function cacheState(download: ModelDownload): CacheState {
  if (download.bytes > 0 && download.cachedBytes === download.bytes) return "cached";
  return download.cachedBytes > 0 ? "partly cached" : "not cached";
}

/** An option's text: its own label, the size of what loading it downloads, and "cached" when all of it is here. */
export function pickerLabel(label: string, download: ModelDownload | undefined): string {
  if (!download) return label;
  const state = cacheState(download);
  return `${label} · ${megabytes(download.bytes)}${state === "not cached" ? "" : ` · ${state}`}`;
}

/**
 * Re-labels every option of `selects` from the offline cache. The option's own label is kept in
 * data-label; data-bytes and data-cache carry the figures for scripts and tests.
 */
export async function markPickers(engine: Engine, runtime: RuntimeName, selects: HTMLSelectElement[]): Promise<void> {
  const downloads = new Map((await engine.storage.downloads(runtime)).map((d) => [d.id, d]));
  for (const select of selects) {
    for (const option of Array.from(select.options)) {
      const download = downloads.get(option.value);
      if (!download) continue;
      option.dataset["label"] ??= option.text;
      option.text = pickerLabel(option.dataset["label"], download);
      option.dataset["bytes"] = String(download.bytes);
      option.dataset["cache"] = cacheState(download);
    }
  }
}
