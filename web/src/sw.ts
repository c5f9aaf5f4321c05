// The service worker (/sw.js, scope /): the app works with the server stopped and the network off.
// * App shell and onnxruntime-web runtime (dist/ort/*): precached at install into a cache named by
//   the build hash; the list is written into this file at build time (vite.config.ts). A new build
//   fills its own cache first; the old one is deleted only on activate, which happens only after
//   the new install completed (cache.addAll is all-or-nothing), so a failed update keeps the old app.
// * Navigations: network first (online users get the newest page), else the cached index.html.
//   Cached responses keep their headers, COOP/COEP included: the page stays crossOriginIsolated.
// * The WebLLM chunk (6 MB) is not precached: cached the first time it is used.
// * /models/*: model files live in the verified OPFS cache (engine/storage/cache.ts, filled by the engine
//   worker). URL-based loaders (WebLLM) get them from there; the engine's own downloads carry a
//   ?sha256= query and Range headers and go to the network untouched.

/// <reference lib="webworker" />
import { cachedFile, findFile, readCachedManifest } from "./engine/storage/cache";

declare const self: ServiceWorkerGlobalScope;

interface Build {
  /** Hash of every precached file's path and content. */
  version: string;
  /** Paths relative to the scope, e.g. "index.html", "assets/index-abc.js", "ort/ort-wasm-simd-threaded.wasm". */
  files: string[];
}

// Replaced by vite.config.ts (lumenServiceWorker) with the build's list.
const BUILD = JSON.parse("__LUMEN_PRECACHE__") as Build;
const PREFIX = "lumen-shell-";
const SHELL = `${PREFIX}${BUILD.version}`;
const scoped = (path: string) => new URL(path, self.registration.scope);
const PRECACHED = new Set(BUILD.files.map((f) => scoped(f).pathname));
const MODELS = scoped("models/").pathname;
const ASSETS = scoped("assets/").pathname;
const API = scoped("api/").pathname;

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL);
    try {
      // reload: straight from the server, never a stale HTTP-cache copy of index.html.
      await cache.addAll(BUILD.files.map((f) => new Request(scoped(f), { cache: "reload" })));
    } catch (err) {
      await caches.delete(SHELL); // incomplete: this install fails and the old version stays
      throw err;
    }
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith(PREFIX) && name !== SHELL) await caches.delete(name);
    }
    await self.clients.claim(); // the first visit is controlled too, so it caches what it uses
  })());
});

async function navigation(request: Request): Promise<Response> {
  try {
    return await fetch(request);
  } catch (err) {
    const page = await caches.match(scoped("index.html"), { cacheName: SHELL });
    if (page) return page;
    throw err;
  }
}

async function cacheFirst(request: Request, keepOnUse: boolean): Promise<Response> {
  const hit = await caches.match(request, { cacheName: SHELL });
  if (hit) return hit;
  const response = await fetch(request);
  if (keepOnUse && response.ok) await (await caches.open(SHELL)).put(request, response.clone());
  return response;
}

/** A model file from the verified OPFS cache, else from the network. */
async function modelFile(request: Request, path: string): Promise<Response> {
  const manifest = await readCachedManifest();
  const entry = manifest && findFile(manifest, path);
  const file = entry && (await cachedFile(entry));
  if (!entry || !file || file.size !== entry.bytes) return fetch(request);
  const type = path.endsWith(".json") ? "application/json" : path.endsWith(".wasm") ? "application/wasm"
    : "application/octet-stream";
  return new Response(file, {
    headers: { "content-type": type, "content-length": String(file.size), etag: `"${entry.sha256}"` },
  });
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    // The app's pages only: an opened /api/ or /models/ URL must not turn into the app offline.
    if (!url.pathname.startsWith(API) && !url.pathname.startsWith(MODELS)) event.respondWith(navigation(request));
  } else if (url.pathname.startsWith(MODELS)) {
    if (!url.searchParams.has("sha256") && !request.headers.has("range")) {
      event.respondWith(modelFile(request, decodeURIComponent(url.pathname.slice(MODELS.length))));
    }
  } else if (PRECACHED.has(url.pathname)) {
    event.respondWith(cacheFirst(request, false));
  } else if (url.pathname.startsWith(ASSETS) && url.pathname.endsWith(".js")) {
    event.respondWith(cacheFirst(request, true)); // lazy chunks (WebLLM): cached on first use
  }
});
