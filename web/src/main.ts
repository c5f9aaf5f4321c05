// The demo page: wires the engine (window.engine) to the Classify, Search and Chat tabs.
// URL options: ?runtime=wasm|webgpu|auto, ?variant=<name>, ?model=<id>, ?chat=<llm id>, ?autoload=0.

import "./styles.css";
import { Engine, type ModelEntry, type RuntimeName } from "./engine/api";
import type { RuntimeRequest } from "./engine/runtime/runtime";
import { ChatTab } from "./ui/chat";
import { ClassifyTab } from "./ui/classify";
import { FewShotPanel } from "./ui/fewshot";
import { mountClassifierStorage } from "./ui/fewshot_storage";
import { FuddPanel } from "./ui/fudd";
import { SearchTab } from "./ui/search";
import { SpeechInput, spokenLabels } from "./ui/speech";
import { TranscribeTab } from "./ui/transcribe";
import { markPickers } from "./ui/model_picker";
import { StoragePanel } from "./ui/storage";
import { byId, clearErrors, showDownload, showError, showModelBanner, showRuntime } from "./ui/status";

declare global {
  interface Window {
    engine: Engine;
    /** Resolves when the first model load finished (or failed): for tests and scripts. */
    lumenReady: Promise<void>;
  }
}

const params = new URLSearchParams(location.search);
const runtimeRequest = setupRuntimeSwitch();
const engine = new Engine();
window.engine = engine;
// "Ask the LLM" uses the chat model picked in the Chat tab, loading it on first use.
const fudd = new FuddPanel(engine, async () => {
  const id = byId<HTMLSelectElement>("chat-model").value;
  if (!engine.llm && id) await chat.load(id);
});
const fewshot = new FewShotPanel(engine);
const classify = new ClassifyTab(engine, fudd, fewshot);
const search = new SearchTab(engine, fewshot);
const chat = new ChatTab(engine, () => ({ runtime: runtimeRequest }), () => void refreshStorage());
// After a delete in the Storage tab: Search re-reads its index, the pickers their "cached" marks.
const storage = new StoragePanel(engine, () => {
  if (engine.vision) void search.modelReady(engine.vision);
  void markPickers(engine, pickerRuntime(), pickers()).catch(showError);
});

function pickers(): HTMLSelectElement[] {
  return [byId<HTMLSelectElement>("model-select"), byId<HTMLSelectElement>("chat-model")];
}

/** The runtime whose default variants the pickers size: the one in use, else the one asked for (auto: WASM until a load says otherwise). */
function pickerRuntime(): RuntimeName {
  return engine.runtime ?? (runtimeRequest === "webgpu" ? "webgpu" : "wasm");
}

/** After a load or a delete: the Storage tab and the pickers' "cached" marks. */
async function refreshStorage(): Promise<void> {
  await Promise.all([storage.refresh(), markPickers(engine, pickerRuntime(), pickers()).catch(showError)]);
}
const speech = new SpeechInput(engine, () => ({ runtime: runtimeRequest }));

/**
 * The "Runs on" switch (auto / WebGPU / WASM): ?runtime= wins, else the last choice (localStorage).
 * onnxruntime-web's backend is fixed once a worker started it, so a change reloads the page
 * (models come from the offline cache, so that is quick).
 */
function setupRuntimeSwitch(): RuntimeRequest {
  const valid = (v: string | null): v is RuntimeRequest => v === "auto" || v === "webgpu" || v === "wasm";
  const fromUrl = params.get("runtime");
  const saved = localStorage.getItem("lumen-runtime");
  const request: RuntimeRequest = valid(fromUrl) ? fromUrl : valid(saved) ? saved : "auto";
  const select = byId<HTMLSelectElement>("runtime-select");
  select.value = request;
  select.addEventListener("change", () => {
    localStorage.setItem("lumen-runtime", select.value);
    const url = new URL(location.href);
    url.searchParams.set("runtime", select.value);
    location.assign(url);
  });
  return request;
}

/** The service worker caches the app and its runtime for offline use (production builds only: dev has no /sw.js). */
function registerServiceWorker(): void {
  if (!import.meta.env.PROD || !("serviceWorker" in navigator)) return;
  const base = import.meta.env.BASE_URL;
  navigator.serviceWorker.register(`${base}sw.js`, { type: "module", scope: base })
    .then(() => navigator.serviceWorker.ready)
    .then(() => refreshStorage())
    .catch(showError);
}

function setupTabs(): void {
  const tabs = Array.from(document.querySelectorAll<HTMLButtonElement>('[role="tab"]'));
  const select = (tab: HTMLButtonElement) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      byId(t.getAttribute("aria-controls")!).hidden = !on;
    }
    document.body.dataset["tab"] = tab.id; // CSS shows tab-specific notices by it

  };
  document.body.dataset["tab"] = tabs.find((t) => t.getAttribute("aria-selected") === "true")?.id ?? "";
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (e) => {
      const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length]!;
      select(next);
      next.focus();
    });
  });
}

function familyName(m: ModelEntry): string {
  return { clip: "CLIP", siglip: "SigLIP", align: "ALIGN", llama: "Llama", whisper: "Whisper" }[m.family];
}

async function loadModel(id: string): Promise<void> {
  clearErrors();
  classify.modelGone();
  search.modelGone();
  fewshot.modelGone();
  const select = byId<HTMLSelectElement>("model-select");
  select.disabled = true;
  try {
    const result = await engine.load({ vision: id }, {
      runtime: runtimeRequest,
      variant: params.get("variant") ?? undefined,
      onProgress: showDownload,
    });
    showRuntime(result.runtime, result.runtimeReason);
    showModelBanner(result.vision);
    classify.modelReady(result.vision.vision.template);
    await search.modelReady(result.vision);
    await fewshot.modelReady(result.vision);
    document.body.dataset["model"] = result.vision.id;
    void refreshStorage();
  } catch (err) {
    showError(err);
    document.body.dataset["model"] = "";
  } finally {
    showDownload(null);
    select.disabled = false;
  }
}

/** Microphone buttons (Chat message, Search query, Classify labels) and the Transcribe tab. */
function setupSpeech(models: ModelEntry[]): void {
  speech.setModels(models);
  const chatInput = byId<HTMLTextAreaElement>("chat-input");
  speech.attach(byId<HTMLButtonElement>("chat-mic"), (text) => {
    chatInput.value = chatInput.value ? `${chatInput.value} ${text}` : text;
  });
  speech.attach(byId<HTMLButtonElement>("search-mic"), (text) => {
    byId<HTMLInputElement>("search-query").value = text;
  });
  const labels = byId<HTMLTextAreaElement>("labels");
  speech.attach(byId<HTMLButtonElement>("labels-mic"), (text) => {
    labels.value = [...labels.value.split("\n").filter((l) => l.trim()), ...spokenLabels(text)].join("\n");
  });
  new TranscribeTab(speech);
}

async function start(): Promise<void> {
  registerServiceWorker();
  storage.mount();
  fewshot.mount();
  mountClassifierStorage(engine, () => void (engine.model && fewshot.modelReady(engine.model)));
  setupTabs();
  // Persistent storage: the browser then does not evict the model cache under disk pressure.
  void engine.storage.persist().catch(() => false);
  const select = byId<HTMLSelectElement>("model-select");
  let models: ModelEntry[];
  try {
    const all = await engine.models();
    chat.setModels(all, params.get("chat"));
    setupSpeech(all);
    models = all.filter((m) => m.vision);
  } catch (err) {
    select.replaceChildren(new Option("no models", ""));
    showError(err);
    return;
  }
  if (models.length === 0) {
    select.replaceChildren(new Option("no models exported", ""));
    showError(new Error("The server has no CLIP-family models. Export one: python -m exporter clip --model tiny-random-clip"));
    return;
  }
  select.replaceChildren(...models.map((m) => new Option(`${m.id} · ${familyName(m)}${m.trained ? "" : " (untrained)"}`, m.id)));
  const wanted = params.get("model");
  if (wanted && models.some((m) => m.id === wanted)) select.value = wanted;
  select.addEventListener("change", () => void loadModel(select.value));
  select.disabled = false;
  await markPickers(engine, pickerRuntime(), pickers()).catch(showError);
  if (params.get("autoload") !== "0") await loadModel(select.value);
}

window.lumenReady = start();
