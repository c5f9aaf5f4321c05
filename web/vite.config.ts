// Builds web/dist. onnxruntime-web's runtime pairs (.mjs + .wasm) are copied into dist/ort/ and
// loaded from there (ort.env.wasm.wasmPaths): the app never touches a CDN.
import { readFileSync } from "node:fs";
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

export default defineConfig({
  resolve: {
    // The non-bundled builds import their runtime .mjs from wasmPaths instead of inlining it,
    // so the threaded runtime can start its own workers from a same-origin URL.
    alias: [{ find: /^onnxruntime-web\/(wasm|webgpu)$/, replacement: `${ortDist}ort.$1.min.mjs` }],
  },
  worker: { format: "es" },
  build: { target: "es2022", sourcemap: true, chunkSizeWarningLimit: 1024 },
  plugins: [copyOrtRuntime()],
});
