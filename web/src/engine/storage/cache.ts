// The model cache on the Origin Private File System (OPFS), shared by the engine worker (which
// downloads into it: store.ts), the service worker (which serves it to URL-based loaders such as
// WebLLM: sw.ts) and the page (storage panel). Layout, one folder per origin:
//
//   lumen-models/manifest.json      the last /api/models seen online: the app knows its models offline
//   lumen-models/files/<sha256>     complete files, verified against the manifest's sha256
//   lumen-models/partial/<sha256>   bytes received so far of an unfinished download (resumed with Range)
//
// Files are named by content hash: a re-export that changes a file gets a new name, identical files
// of two models are stored once, and a name says what its bytes must hash to.

import type { FileEntry, Manifest, ModelEntry } from "../manifest.gen";

const ROOT = "lumen-models";
const MANIFEST = "manifest.json";
export type Folder = "files" | "partial";

export interface ModelUsage {
  id: string;
  /** Bytes of this model's complete cached files (the manifest's `bytes`, each content once). */
  bytes: number;
  /** How many of the model's manifest files are cached (complete and named by their sha256). */
  cachedFiles: number;
  totalFiles: number;
  /** Bytes received so far of this model's unfinished downloads (resumed on the next load). */
  partialBytes: number;
  /** How many of its files have an unfinished download. */
  partialFiles: number;
}

export interface CacheUsage {
  /** Models with complete or unfinished files in the cache. */
  models: ModelUsage[];
  /** Bytes of the complete files the manifest's models name, each file once (models may share files). */
  modelBytes: number;
  /** Bytes of unfinished downloads (kept to resume). */
  partialBytes: number;
  /** Bytes of complete files that no model of the manifest names (older exports). */
  orphanBytes: number;
}

// Directory iteration is in TypeScript's DOM.AsyncIterable lib, which tsconfig does not include.
interface IterableDirectory extends FileSystemDirectoryHandle {
  values(): AsyncIterableIterator<FileSystemHandle>;
}

function isNotFound(err: unknown): boolean {
  return err instanceof DOMException && err.name === "NotFoundError";
}

async function root(): Promise<FileSystemDirectoryHandle> {
  return (await navigator.storage.getDirectory()).getDirectoryHandle(ROOT, { create: true });
}

export async function folder(name: Folder): Promise<FileSystemDirectoryHandle> {
  return (await root()).getDirectoryHandle(name, { create: true });
}

/** The handle of `<folder>/<sha256>`, or null when absent. */
export async function fileHandle(where: Folder, sha256: string): Promise<FileSystemFileHandle | null> {
  try {
    return await (await folder(where)).getFileHandle(sha256);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/** The complete cached file named by this entry's sha256 (size and hash not yet checked), or null. */
export async function cachedFile(entry: FileEntry): Promise<File | null> {
  return (await (await fileHandle("files", entry.sha256))?.getFile()) ?? null;
}

export async function removeFile(where: Folder, sha256: string): Promise<void> {
  try {
    await (await folder(where)).removeEntry(sha256);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

export async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function readCachedManifest(): Promise<Manifest | null> {
  try {
    const file = await (await root()).getFileHandle(MANIFEST);
    return JSON.parse(await (await file.getFile()).text()) as Manifest;
  } catch (err) {
    if (isNotFound(err) || err instanceof SyntaxError) return null;
    throw err;
  }
}

/** createWritable writes to a swap file and swaps it in on close: readers never see half a manifest. */
export async function writeCachedManifest(manifest: Manifest): Promise<void> {
  const handle = await (await root()).getFileHandle(MANIFEST, { create: true });
  const writable = await handle.createWritable();
  await writable.write(JSON.stringify(manifest));
  await writable.close();
}

/** The manifest entry of a logical path '<id>/<rest>', in any model. */
export function findFile(manifest: Manifest, path: string): FileEntry | null {
  for (const model of manifest.models ?? []) {
    const file = model.files.find((f) => f.path === path);
    if (file) return file;
  }
  return null;
}

const sum = (values: number[]): number => values.reduce((s, n) => s + n, 0);

async function sizes(where: Folder): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const handle of ((await folder(where)) as IterableDirectory).values()) {
    if (handle.kind === "file") out.set(handle.name, (await (handle as FileSystemFileHandle).getFile()).size);
  }
  return out;
}

/** sha256 -> size of every complete file in the cache. */
export function completeFiles(): Promise<Map<string, number>> {
  return sizes("files");
}

export async function cacheUsage(manifest: Manifest): Promise<CacheUsage> {
  const complete = await sizes("files");
  const partial = await sizes("partial");
  const named = new Map<string, number>(); // sha256 -> bytes, of complete files a model names
  const models: ModelUsage[] = [];
  for (const model of manifest.models ?? []) {
    const cached = model.files.filter((f) => complete.get(f.sha256) === f.bytes);
    const unfinished = model.files.filter((f) => (partial.get(f.sha256) ?? 0) > 0 && !complete.has(f.sha256));
    cached.forEach((f) => named.set(f.sha256, f.bytes));
    if (cached.length === 0 && unfinished.length === 0) continue;
    // A model may list one content twice (the MLC build's copy of tokenizer.json): stored once, counted once.
    const once = (files: FileEntry[], size: (f: FileEntry) => number) => sum([...new Map(files.map((f) => [f.sha256, size(f)])).values()]);
    models.push({ id: model.id, bytes: once(cached, (f) => f.bytes), cachedFiles: cached.length,
      totalFiles: model.files.length, partialBytes: once(unfinished, (f) => partial.get(f.sha256)!),
      partialFiles: unfinished.length });
  }
  const listed = new Set((manifest.models ?? []).flatMap((m) => m.files.map((f) => f.sha256)));
  return {
    models,
    modelBytes: sum([...named.values()]),
    partialBytes: sum([...partial.values()]),
    orphanBytes: sum([...complete].filter(([sha]) => !listed.has(sha)).map(([, n]) => n)),
  };
}

/** Deletes a model's cached and partial files, except those another cached model also uses. */
export async function deleteModel(manifest: Manifest, id: string): Promise<void> {
  const models = manifest.models ?? [];
  const target = models.find((m) => m.id === id);
  if (!target) return;
  const own = new Set(target.files.map((f) => f.sha256));
  const complete = await sizes("files");
  // Another model counts as cached when it has a cached file of its own, not only shared ones.
  const keep = new Set(models
    .filter((m: ModelEntry) => m.id !== id && m.files.some((f) => !own.has(f.sha256) && complete.has(f.sha256)))
    .flatMap((m) => m.files.map((f) => f.sha256)));
  for (const sha of own) {
    if (keep.has(sha)) continue;
    await removeFile("files", sha);
    await removeFile("partial", sha);
  }
}

/** Removes every cached model file and unfinished download (the cached manifest stays). */
export async function clearCache(): Promise<void> {
  const dir = await root();
  for (const name of ["files", "partial"] as const) {
    try {
      await dir.removeEntry(name, { recursive: true });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
