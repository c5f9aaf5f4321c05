// The Chat tab: pick a chat model, talk to it with streamed replies, stop a reply midway, tune
// temperature and max tokens, and see which engine runs it (WebLLM or onnxruntime-web, and why).
// The model loads the first time the tab is opened (it is the biggest download of the app).
// The panel's data-state ("idle", "loading", "ready", "generating", "error") is for tests.

import type { ChatMessage, Engine, LoadOptions, ModelEntry } from "../engine/api";
import { byId, showDownload, showError, showRuntime } from "./status";

type State = "idle" | "loading" | "ready" | "generating" | "error";

export class ChatTab {
  private readonly panel = byId("panel-chat");
  private readonly select = byId<HTMLSelectElement>("chat-model");
  private readonly log = byId("chat-log");
  private readonly input = byId<HTMLTextAreaElement>("chat-input");
  private readonly send = byId<HTMLButtonElement>("chat-send");
  private readonly stop = byId<HTMLButtonElement>("chat-stop");
  private readonly temperature = byId<HTMLInputElement>("chat-temperature");
  private readonly maxTokens = byId<HTMLInputElement>("chat-max-tokens");
  private readonly pathLine = byId("chat-path");
  private readonly banner = byId("chat-banner");
  private history: ChatMessage[] = [];
  private controller: AbortController | null = null;
  private loaded: string | null = null;
  private hasModels = false;

  constructor(private readonly engine: Engine, private readonly loadOptions: () => LoadOptions) {
    byId("chat-form").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.ask();
    });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        void this.ask();
      }
    });
    this.stop.addEventListener("click", () => this.controller?.abort());
    byId("chat-clear").addEventListener("click", () => {
      this.history = [];
      this.log.replaceChildren();
    });
    this.select.addEventListener("change", () => void this.load(this.select.value));
    byId("tab-chat").addEventListener("click", () => {
      if (this.hasModels && this.loaded === null && this.state !== "loading") void this.load(this.select.value);
    });
    this.setState("idle");
  }

  /** Fills the model list (models with task text-generation); `wanted` preselects one. */
  setModels(models: ModelEntry[], wanted: string | null): void {
    const llms = models.filter((m) => m.task === "text-generation");
    if (llms.length === 0) {
      this.select.replaceChildren(new Option("no chat models exported", ""));
      this.pathLine.textContent = "Export one: python -m exporter llm --model smollm2";
      return;
    }
    this.hasModels = true;
    this.select.replaceChildren(...llms.map((m) => new Option(`${m.id}${m.trained ? "" : " (untrained)"}`, m.id)));
    if (wanted && llms.some((m) => m.id === wanted)) this.select.value = wanted;
    this.select.disabled = false;
  }

  private get state(): State {
    return this.panel.dataset["state"] as State;
  }

  private setState(state: State): void {
    this.panel.dataset["state"] = state;
    const generating = state === "generating";
    this.send.disabled = state !== "ready";
    this.input.disabled = state === "loading" || state === "idle";
    this.stop.disabled = !generating;
    this.select.disabled = state === "loading" || generating || !this.hasModels;
  }

  async load(id: string): Promise<void> {
    this.setState("loading");
    this.pathLine.textContent = `Loading ${id}…`;
    try {
      const result = await this.engine.loadLlm(id, { ...this.loadOptions(), onProgress: showDownload });
      const info = result.llm;
      showRuntime(result.runtime, result.runtimeReason);
      this.loaded = info.id;
      this.pathLine.textContent = `${info.runtime} · ${info.pathReason}`;
      this.pathLine.dataset["path"] = info.path;
      this.banner.hidden = info.trained && !info.note; // the note says e.g. "base model: plain completion"
      this.banner.textContent = info.trained ? info.note ?? "" : `${info.id} is an untrained test model: its replies are random tokens.`;
      this.history = [];
      this.log.replaceChildren();
      this.setState("ready");
      this.input.focus();
    } catch (err) {
      this.loaded = null;
      this.pathLine.textContent = "";
      showError(err);
      this.setState("error");
    } finally {
      showDownload(null);
    }
  }

  private bubble(role: "user" | "assistant", text: string): HTMLElement {
    const item = document.createElement("li");
    item.className = `chat-msg ${role}`;
    item.dataset["role"] = role;
    const body = document.createElement("div");
    body.className = "chat-text";
    body.textContent = text;
    item.append(body);
    this.log.append(item);
    return body;
  }

  private async ask(): Promise<void> {
    const text = this.input.value.trim();
    if (!text || this.state !== "ready") return;
    this.input.value = "";
    this.bubble("user", text);
    this.history.push({ role: "user", content: text });
    const reply = this.bubble("assistant", "");
    const item = reply.parentElement!;
    item.dataset["status"] = "streaming";
    this.controller = new AbortController();
    this.setState("generating");
    let content = "";
    try {
      const stream = await this.engine.chat.completions.create({
        messages: this.history,
        stream: true,
        temperature: Number(this.temperature.value),
        max_tokens: Number(this.maxTokens.value),
        signal: this.controller.signal,
      });
      for await (const chunk of stream) {
        const choice = chunk.choices[0];
        content += choice?.delta.content ?? "";
        reply.textContent = content;
        reply.scrollIntoView({ block: "end" });
        if (chunk.usage) item.append(this.stats(chunk.usage.completion_tokens, chunk.usage.extra?.decode_tokens_per_s,
          choice?.finish_reason ?? null));
      }
      item.dataset["status"] = "done";
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") {
        item.dataset["status"] = "stopped";
        item.append(this.note("stopped"));
      } else {
        item.dataset["status"] = "error";
        showError(err);
      }
    } finally {
      this.controller = null;
      // A stopped reply stays in the conversation as far as it got, as chat apps do.
      this.history.push({ role: "assistant", content });
      this.setState("ready");
    }
  }

  private note(text: string): HTMLElement {
    const note = document.createElement("small");
    note.className = "chat-note";
    note.textContent = text;
    return note;
  }

  private stats(tokens: number, tokensPerSecond: number | undefined, finish: string | null): HTMLElement {
    const speed = tokensPerSecond ? ` · ${tokensPerSecond.toFixed(1)} tok/s` : "";
    const cut = finish === "length" ? " · stopped at max tokens" : "";
    return this.note(`${tokens} tokens${speed}${cut}`);
  }
}
