// Builds web/dist. onnxruntime-web's runtime pairs (.mjs + .wasm) are copied into dist/ort/ and
// loaded from there (ort.env.wasm.wasmPaths): the app never touches a CDN. src/sw.ts becomes
// /sw.js with the build's precache list written into it (lumenServiceWorker).
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vite";

const ortDist = fileURLToPath(new URL("./node_modules/onnxruntime-web/dist/", import.meta.url));

// ort.wasm.min.mjs loads the plain threaded pair; ort.webgpu.min.mjs the asyncify pair.
const ORT_RUNTIME_FILES = [
  "ort-wasm-simd-threaded.mjs",
  "ort-wasm-simd-threaded.wasm",
  "ort-wasm-simd-threaded.asyncify.mjs",
  "ort-wasm-simd-threaded.asyncify.wasm",
];

function copyOrtRuntime(): Plugin {
  return {
    name: "lumen-copy-ort-runtime",
    apply: "build",
    generateBundle() {
      for (const name of ORT_RUNTIME_FILES) {
        this.emitFile({ type: "asset", fileName: `ort/${name}`, source: readFileSync(ortDist + name) });
      }
    },
  };
}

// Chunks of the worker build that only the WebLLM path imports (6 MB): cached on use, not precached.
const lazyChunks = new Set<string>();

function recordLazyChunks(): Plugin {
  return {
    name: "lumen-record-lazy-chunks",
    generateBundle(_options, bundle) {
      for (const item of Object.values(bundle)) {
        if (item.type === "chunk" && item.isDynamicEntry && item.moduleIds.some((id) => id.includes("@mlc-ai/web-llm"))) {
          lazyChunks.add(item.fileName);
        }
      }
    },
  };
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split("\\").join("/"));
}

/** Writes the precache list (every built file but source maps, sw.js and lazy chunks) and its hash into sw.js. */
function lumenServiceWorker(): Plugin {
  let outDir = "";
  return {
    name: "lumen-service-worker",
    apply: "build",
    configResolved(config) {
      outDir = resolve(config.root, config.build.outDir);
    },
    writeBundle() {
      const files = listFiles(outDir)
        .filter((f) => !f.endsWith(".map") && f !== "sw.js" && !lazyChunks.has(f))
        .sort();
      const version = createHash("sha256");
      for (const f of files) version.update(`${f}\0${createHash("sha256").update(readFileSync(join(outDir, f))).digest("hex")}\n`);
      const build = { version: version.digest("hex").slice(0, 16), files };
      const sw = join(outDir, "sw.js");
      const code = readFileSync(sw, "utf8");
      const placeholder = /(["'`])__LUMEN_PRECACHE__\1/;
      if (!placeholder.test(code)) throw new Error("sw.js lacks the __LUMEN_PRECACHE__ placeholder");
      writeFileSync(sw, code.replace(placeholder, () => JSON.stringify(JSON.stringify(build))));
    },
  };
}

export default defineConfig({
  resolve: {
    // The non-bundled builds import their runtime .mjs from wasmPaths instead of inlining it,
    // so the threaded runtime can start its own workers from a same-origin URL.
    alias: [{ find: /^onnxruntime-web\/(wasm|webgpu)$/, replacement: `${ortDist}ort.$1.min.mjs` }],
  },
  worker: { format: "es", plugins: () => [recordLazyChunks()] },
  build: {
    target: "es2022",
    sourcemap: true,
    chunkSizeWarningLimit: 1024,
    rolldownOptions: {
      input: { index: fileURLToPath(new URL("./index.html", import.meta.url)), sw: fileURLToPath(new URL("./src/sw.ts", import.meta.url)) },
      // The service worker keeps a fixed name at the root: its scope is the whole app.
      output: { entryFileNames: (chunk) => (chunk.name === "sw" ? "sw.js" : "assets/[name]-[hash].js") },
    },
  },
  plugins: [copyOrtRuntime(), lumenServiceWorker()],
});
