// Page-wide status: runtime badge and its reason, the untrained-model banner, error alerts with
// their fix, and the model download progress line.

import { EngineError, type DownloadProgress, type VisionModelInfo } from "../engine/api";

const TITLES: Record<string, string> = {
  DownloadError: "Download failed",
  UnsupportedImageError: "Unsupported image",
  ModelTooLargeError: "Model too large",
  WebGPUUnavailableError: "WebGPU unavailable",
  ModelNotFoundError: "Model not found",
  ModelNotLoadedError: "No model loaded",
  UnsupportedModelConfigError: "Unsupported model",
  InferenceError: "Inference failed",
  EngineClosedError: "Engine stopped",
  InvalidRequestError: "Invalid chat request",
  StorageQuotaError: "Not enough storage",
  CorruptFileError: "Damaged model file",
};

/** A mistake in what the user typed or picked: its message is the title, `fix` says what to do. */
export class InputError extends Error {
  override name = "InputError";
  constructor(message: string, readonly fix: string) {
    super(message);
  }
}

export function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from index.html`);
  return el as T;
}

export function showError(err: unknown): void {
  const box = document.createElement("div");
  box.className = "alert";
  const name = err instanceof Error ? err.name : "Error";
  box.dataset["error"] = name;
  const title = document.createElement("strong");
  if (err instanceof InputError) {
    title.textContent = err.message;
    box.append(title);
  } else {
    title.textContent = TITLES[name] ?? "Something went wrong";
    const message = document.createElement("p");
    message.textContent = err instanceof Error ? err.message : String(err);
    box.append(title, message);
  }
  if ((err instanceof EngineError || err instanceof InputError) && err.fix) {
    const fix = document.createElement("p");
    fix.className = "fix";
    fix.textContent = `What to do: ${err.fix}`;
    box.append(fix);
  }
  const close = document.createElement("button");
  close.className = "close";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  close.addEventListener("click", () => box.remove());
  box.append(close);
  byId("alerts").append(box);
}

export function clearErrors(): void {
  byId("alerts").replaceChildren();
}

/** Appends a closed "details" disclosure with the technical `text` to `target` (plain words stay in view). */
export function setDetails(target: HTMLElement, text: string): void {
  target.querySelector(":scope > details.tech")?.remove();
  const details = document.createElement("details");
  details.className = "tech";
  const summary = document.createElement("summary");
  summary.textContent = "details";
  const body = document.createElement("span");
  body.textContent = text;
  details.append(summary, body);
  target.append(" ", details);
}

export function showRuntime(runtime: string, reason: string): void {
  const badge = byId("runtime-badge");
  badge.dataset["runtime"] = runtime;
  badge.textContent = runtime === "webgpu" ? "WebGPU" : "WASM";
  badge.title = reason;
  const line = byId("runtime-reason");
  line.textContent = runtime === "webgpu"
    ? "Models run on this device's graphics card (WebGPU)."
    : "Models run on this device's processor (WASM).";
  setDetails(line, reason);
  const option = byId<HTMLSelectElement>("runtime-select").querySelector<HTMLOptionElement>('option[value="auto"]');
  if (option) option.textContent = `Auto (${runtime === "webgpu" ? "WebGPU" : "WASM"})`;
}

/** `text` with its `backquoted` parts as <code> elements (commands stay copyable and readable). */
function withCode(text: string): Node[] {
  return text.split("`").map((part, i) => {
    if (i % 2 === 0) return document.createTextNode(part);
    const code = document.createElement("code");
    code.textContent = part;
    return code;
  });
}

/**
 * The untrained-model warning: shown on the vision tabs only (CSS, by body[data-tab]), dismissible
 * for this model until the page is closed (sessionStorage).
 */
export function showModelBanner(model: VisionModelInfo): void {
  const banner = byId("untrained-banner");
  const key = `lumen-banner-dismissed:${model.id}`;
  banner.hidden = model.trained || sessionStorage.getItem(key) === "1";
  if (banner.hidden) return;
  banner.replaceChildren();
  const title = document.createElement("strong");
  title.textContent = `${model.id} is an untrained test model: its answers are random.`;
  banner.append(title);
  if (model.note) {
    const note = document.createElement("p");
    note.append(...withCode(model.note), " Afterwards, reloading this page is enough: the server picks the new model up.");
    banner.append(note);
  }
  const close = document.createElement("button");
  close.className = "close";
  close.id = "untrained-banner-close";
  close.setAttribute("aria-label", "Dismiss this notice");
  close.textContent = "×";
  close.addEventListener("click", () => {
    sessionStorage.setItem(key, "1");
    banner.hidden = true;
  });
  banner.append(close);
}

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

export function showDownload(p: DownloadProgress | null): void {
  const box = byId("load-status");
  box.hidden = p === null;
  if (!p) return;
  if (p.preparing) {
    const { step, done, total } = p.preparing;
    byId<HTMLProgressElement>("load-progress").value = done / total;
    byId("load-text").textContent = `Preparing the model: ${step} (step ${done + 1} of ${total})…`;
    return;
  }
  byId<HTMLProgressElement>("load-progress").value = p.totalBytes ? p.loadedBytes / p.totalBytes : 1;
  const eta = p.etaSeconds === null ? "" : ` · ${Math.ceil(p.etaSeconds)} s left`;
  byId("load-text").textContent = `${mb(p.loadedBytes)} / ${mb(p.totalBytes)} MB · ${p.mbPerSecond.toFixed(1)} MB/s${eta}`;
}
