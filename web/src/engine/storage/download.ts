// One manifest file, verified and resumable (runs in the engine worker: OPFS sync access handles
// exist only in dedicated workers). A cached file is hashed before every use and evicted when it
// does not match; a download writes each chunk to lumen-models/partial/<sha256> as it arrives,
// so a cut connection (or a closed tab) resumes with `Range: bytes=<received>-`, and the file is
// hashed from disk before it moves to lumen-models/files/.

import { cachedFile, fileHandle, folder, removeFile, sha256Hex } from "./cache";
import { CorruptFileError, DownloadError, StorageQuotaError } from "../errors";
import type { FileEntry } from "../manifest.gen";

/** Attempts per file and load; an attempt is retried only when it received bytes (a cut, not "offline"). */
const MAX_ATTEMPTS = 3;

// FileSystemHandle.move (Chromium 110+, Firefox 111+, Safari 16.4+ on OPFS) is not in TypeScript's DOM lib.
interface MovableHandle extends FileSystemFileHandle {
  move(destination: FileSystemDirectoryHandle, name: string): Promise<void>;
}

export function megabytes(bytes: number): string {
  return bytes < 1e6 ? `${(bytes / 1e3).toFixed(1)} kB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

/** Bytes still to download for `files`: neither cached nor already received in a partial file. */
async function bytesToDownload(files: FileEntry[]): Promise<number> {
  let need = 0;
  for (const file of files) {
    if ((await cachedFile(file))?.size === file.bytes) continue;
    const partial = await (await fileHandle("partial", file.sha256))?.getFile();
    need += file.bytes - Math.min(partial?.size ?? 0, file.bytes);
  }
  return need;
}

/** Throws StorageQuotaError when the browser's quota cannot hold what `files` still need. */
export async function checkQuota(files: FileEntry[]): Promise<void> {
  const need = await bytesToDownload(files);
  if (need === 0) return;
  const { quota, usage } = await navigator.storage.estimate();
  if (quota === undefined) return;
  const free = Math.max(0, quota - (usage ?? 0));
  if (need <= free) return;
  const first = files[0]?.path ?? "";
  throw new StorageQuotaError(
    `${first}${files.length > 1 ? ` and ${files.length - 1} more files` : ""} need ${megabytes(need)} more ` +
      `storage; this browser lets Lumen store only ${megabytes(free)} more (quota ${megabytes(quota)}, ` +
      `used ${megabytes(usage ?? 0)})`,
    "free space: delete models you do not need in the Storage tab, or clear other sites' data in the browser settings");
}

/** The file's bytes, from the cache when they hash right, else downloaded (resumed) and verified. */
export async function loadVerified(file: FileEntry, url: string, onBytes: (n: number) => void): Promise<Uint8Array> {
  const cached = await cachedFile(file);
  let damage: string | null = null;
  if (cached) {
    const bytes = new Uint8Array(await cached.arrayBuffer());
    const got = cached.size === file.bytes ? await sha256Hex(bytes) : null;
    if (got === file.sha256) {
      onBytes(file.bytes);
      return bytes;
    }
    damage = got === null ? `${cached.size} bytes, expected ${file.bytes}` : `sha256 ${got}, expected ${file.sha256}`;
    await removeFile("files", file.sha256);
  }
  return download(file, url, onBytes, damage);
}

async function download(file: FileEntry, url: string, onBytes: (n: number) => void,
  damage: string | null): Promise<Uint8Array> {
  const handle = await (await folder("partial")).getFileHandle(file.sha256, { create: true });
  let access: FileSystemSyncAccessHandle;
  try {
    access = await handle.createSyncAccessHandle();
  } catch (err) {
    throw new DownloadError(`cannot write ${file.path} to the model cache: ${String(err)}`,
      "another Lumen tab may be downloading it: wait for that tab, or close it, and load again");
  }
  try {
    let restarted = false;
    for (let attempt = 1; ; attempt++) {
      if (access.getSize() > file.bytes) access.truncate(0); // not this file's bytes
      const before = access.getSize();
      onBytes(before); // resumed bytes count as loaded
      if (before < file.bytes) {
        try {
          await receive(file, url, access, before, onBytes);
        } catch (err) {
          const saved = access.getSize();
          onBytes(-saved);
          if (isQuotaError(err)) throw quotaFailure(file, saved);
          if (saved > before && attempt < MAX_ATTEMPTS) continue; // cut mid-body: resume at once
          throw failure(file, err, damage);
        }
      }
      const bytes = new Uint8Array(file.bytes);
      access.read(bytes, { at: 0 });
      const got = await sha256Hex(bytes);
      if (got === file.sha256) {
        access.close();
        await (handle as MovableHandle).move(await folder("files"), file.sha256);
        return bytes;
      }
      access.truncate(0);
      onBytes(-file.bytes);
      if (restarted) {
        throw new CorruptFileError(`the server sent ${file.path} with sha256 ${got}, but the manifest says ${file.sha256}`,
          "re-export the model on the server (python -m exporter ...), then reload");
      }
      restarted = true; // the partial bytes were wrong: one fresh download from byte 0
    }
  } finally {
    access.close(); // a no-op when already closed; frees the file for other tabs
  }
}

export function isQuotaError(err: unknown): boolean {
  return err instanceof DOMException && err.name === "QuotaExceededError";
}

/** The estimate before a download is only an estimate: the quota can still run out while writing. */
function quotaFailure(file: FileEntry, saved: number): StorageQuotaError {
  return new StorageQuotaError(`the browser's storage quota ran out while saving ${file.path}: ` +
    `${megabytes(saved)} of its ${megabytes(file.bytes)} are saved, ${megabytes(file.bytes - saved)} more do not fit`,
  "free space: delete models you do not need in the Storage tab, then load again (the download resumes)");
}

function failure(file: FileEntry, err: unknown, damage: string | null): Error {
  if (err instanceof DownloadError) {
    if (!damage) return err;
    return new CorruptFileError(`${file.path} in the local model cache was damaged (${damage}), so it was ` +
      `removed; fetching it again failed: ${err.message}`,
    "reconnect to the Lumen server and load the model again: only this file is downloaded again");
  }
  return new DownloadError(`download of ${file.path} failed: ${String(err)}`, "check the connection to the Lumen server and retry");
}

/** GETs the file from byte `offset` on and writes each chunk at its place; throws DownloadError. */
async function receive(file: FileEntry, url: string, access: FileSystemSyncAccessHandle, offset: number,
  onBytes: (n: number) => void): Promise<void> {
  const fail = (why: string) => new DownloadError(`download of ${file.path} failed: ${why}`,
    "check the connection to the Lumen server and retry: the download resumes where it stopped");
  // no-store: this cache is the only copy; the HTTP cache would hold a second one.
  const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-`, "If-Range": `"${file.sha256}"` } : {};
  let response: Response;
  try {
    response = await fetch(url, { headers, cache: "no-store" });
  } catch (err) {
    throw new DownloadError(`${file.path} is not in the local model cache and the server cannot be reached (${String(err)})`,
      "connect to the Lumen server once to download it; after that it works offline");
  }
  if (offset > 0 && response.status === 200) {
    onBytes(-offset); // the server sent the whole file (If-Range did not match): start over
    offset = 0;
    access.truncate(0);
  } else if (response.status === 206) {
    const range = response.headers.get("content-range") ?? "";
    if (!range.startsWith(`bytes ${offset}-`) || !range.endsWith(`/${file.bytes}`)) throw fail(`unexpected Content-Range ${range}`);
  } else if (!response.ok) {
    throw fail(`HTTP ${response.status}`);
  }
  if (!response.body) throw fail("empty response");
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (offset + value.byteLength > file.bytes) throw fail(`more than the manifest's ${file.bytes} bytes`);
      const written = access.write(value, { at: offset });
      offset += written;
      if (written !== value.byteLength) throw new DOMException(`wrote ${written} of ${value.byteLength} bytes`, "QuotaExceededError");
      onBytes(value.byteLength);
    }
  } catch (err) {
    if (err instanceof DownloadError || isQuotaError(err)) throw err;
    throw fail(`connection lost after ${offset} bytes (${String(err)})`);
  } finally {
    access.flush();
  }
  if (offset !== file.bytes) throw fail(`got ${offset} of ${file.bytes} bytes`);
}
