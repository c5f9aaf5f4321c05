// Every model-file fetch goes through here (a later issue adds the verified sha256 cache and
// the service worker in this one place). Files are addressed by their logical manifest path
// '<id>/<rest>', served at /models/<id>/<rest>.

import { DownloadError, ModelNotFoundError } from "./errors";
import type { FileEntry, Manifest, ModelEntry } from "./manifest.gen";

export interface DownloadProgress {
  loadedBytes: number;
  totalBytes: number;
  /** Average speed since the download began. */
  mbPerSecond: number;
  /** Seconds left at that speed; null until it is known. */
  etaSeconds: number | null;
  file: string;
}

export type ProgressCallback = (p: DownloadProgress) => void;

export function modelUrl(path: string): string {
  return new URL(`${import.meta.env.BASE_URL}models/${path}`, self.location.origin).href;
}

export async function fetchManifest(): Promise<Manifest> {
  const url = new URL(`${import.meta.env.BASE_URL}api/models`, self.location.origin).href;
  let response: Response;
  try {
    response = await fetch(url, { cache: "no-store" });
  } catch (err) {
    throw new DownloadError(`cannot reach ${url}: ${String(err)}`, "check that the Lumen server is running");
  }
  if (!response.ok) throw new DownloadError(`${url} answered HTTP ${response.status}`, "check the server log");
  return (await response.json()) as Manifest;
}

export function findModel(manifest: Manifest, id: string): ModelEntry {
  const entry = manifest.models?.find((m) => m.id === id);
  if (!entry) {
    const known = (manifest.models ?? []).map((m) => m.id).join(", ") || "none";
    throw new ModelNotFoundError(`model ${id} is not in /api/models (known: ${known})`,
      `export it first: python -m exporter clip --model ... --id ${id}`);
  }
  return entry;
}

export function fileEntry(entry: ModelEntry, path: string): FileEntry {
  const file = entry.files.find((f) => f.path === path);
  if (!file) throw new ModelNotFoundError(`${path} is not listed for model ${entry.id}`, "re-export the model");
  return file;
}

/** Downloads several files with one combined progress report; resolves to their bytes by path. */
export async function fetchFiles(files: FileEntry[], onProgress?: ProgressCallback): Promise<Map<string, Uint8Array>> {
  const totalBytes = files.reduce((sum, f) => sum + f.bytes, 0);
  const start = performance.now();
  let loadedBytes = 0;
  const report = (file: string) => {
    const seconds = (performance.now() - start) / 1000;
    const rate = seconds > 0 ? loadedBytes / seconds : 0;
    onProgress?.({
      loadedBytes,
      totalBytes,
      mbPerSecond: rate / 1e6,
      etaSeconds: rate > 0 ? (totalBytes - loadedBytes) / rate : null,
      file,
    });
  };
  const out = new Map<string, Uint8Array>();
  for (const file of files) {
    out.set(file.path, await fetchOne(file, (n) => {
      loadedBytes += n;
      report(file.path);
    }));
  }
  report(files.at(-1)?.path ?? "");
  return out;
}

async function fetchOne(file: FileEntry, onChunk: (bytes: number) => void): Promise<Uint8Array> {
  // Model URLs are cached as immutable; the content hash in the query keeps a re-export from
  // being answered with the browser's stale copy (the server ignores the query).
  const url = `${modelUrl(file.path)}?sha256=${file.sha256}`;
  const fail = (why: string) => new DownloadError(`download of ${file.path} failed: ${why}`,
    "check the connection to the Lumen server and retry");
  let response: Response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw fail(String(err));
  }
  if (!response.ok || !response.body) throw fail(`HTTP ${response.status}`);
  const buffer = new Uint8Array(file.bytes);
  const reader = response.body.getReader();
  let offset = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (offset + value.byteLength > buffer.byteLength) throw fail(`more than the manifest's ${file.bytes} bytes`);
      buffer.set(value, offset);
      offset += value.byteLength;
      onChunk(value.byteLength);
    }
  } catch (err) {
    throw err instanceof DownloadError ? err : fail(String(err));
  }
  if (offset !== file.bytes) throw fail(`got ${offset} of ${file.bytes} bytes`);
  return buffer;
}
