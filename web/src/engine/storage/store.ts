// Every model-file fetch goes through here: files come from the verified OPFS cache (cache.ts,
// download.ts: sha256-checked before use, resumable downloads). Files are addressed by their
// logical manifest path '<id>/<rest>', served at /models/<id>/<rest>.

import { readCachedManifest, writeCachedManifest } from "./cache";
import { checkQuota, isQuotaError, loadVerified, megabytes } from "./download";
import { DownloadError, ModelNotFoundError, StorageQuotaError } from "../errors";
import type { FileEntry, Manifest, ModelEntry } from "../manifest.gen";

export interface DownloadProgress {
  loadedBytes: number;
  totalBytes: number;
  /** Average speed since the download began. */
  mbPerSecond: number;
  /** Seconds left at that speed; null until it is known. */
  etaSeconds: number | null;
  file: string;
  /** After the download: which preparation step runs now (step `done + 1` of `total`). */
  preparing?: { step: string; done: number; total: number };
}

export type ProgressCallback = (p: DownloadProgress) => void;

export function modelUrl(path: string): string {
  return new URL(`${import.meta.env.BASE_URL}models/${path}`, self.location.origin).href;
}

/** /api/models, cached on every success; offline (or server stopped) the cached copy answers. */
export async function fetchManifest(): Promise<Manifest> {
  const url = new URL(`${import.meta.env.BASE_URL}api/models`, self.location.origin).href;
  let response: Response;
  try {
    response = await fetch(url, { cache: "no-store" });
  } catch (err) {
    const cached = await readCachedManifest();
    if (cached) return cached;
    throw new DownloadError(`cannot reach ${url}: ${String(err)}`, "check that the Lumen server is running");
  }
  if (!response.ok) throw new DownloadError(`${url} answered HTTP ${response.status}`, "check the server log");
  const manifest = (await response.json()) as Manifest;
  // Best effort: a failed write (e.g. no OPFS in a private window) only costs offline use.
  await writeCachedManifest(manifest).catch(() => undefined);
  return manifest;
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
export function fetchFiles(files: FileEntry[], onProgress?: ProgressCallback): Promise<Map<string, Uint8Array>> {
  return loadAll(files, onProgress, true);
}

/** Makes `files` available offline (verified, resumable) without keeping their bytes. */
export async function cacheFiles(files: FileEntry[], onProgress?: ProgressCallback): Promise<void> {
  await loadAll(files, onProgress, false);
}

async function loadAll(files: FileEntry[], onProgress: ProgressCallback | undefined,
  keep: boolean): Promise<Map<string, Uint8Array>> {
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
  try {
    await checkQuota(files);
    for (const file of files) {
      const bytes = await fetchOne(file, (n) => {
        loadedBytes += n;
        report(file.path);
      });
      if (keep) out.set(file.path, bytes);
    }
  } catch (err) {
    // Any other write the full quota refused (a folder, the move of a finished file).
    if (!isQuotaError(err)) throw err;
    throw new StorageQuotaError(`the browser's storage quota is full: ${files[0]?.path ?? ""} and the other files ` +
      `of this model (${megabytes(totalBytes)}) do not fit`,
    "free space: delete models you do not need in the Storage tab, then load again");
  }
  report(files.at(-1)?.path ?? "");
  return out;
}

function fetchOne(file: FileEntry, onChunk: (bytes: number) => void): Promise<Uint8Array> {
  // The content hash in the query keeps a re-export from being answered with a stale copy from
  // any HTTP cache on the way (the server ignores the query).
  return loadVerified(file, `${modelUrl(file.path)}?sha256=${file.sha256}`, onChunk);
}
