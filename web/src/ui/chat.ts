// The Chat tab: pick a chat model, talk to it with streamed replies (Markdown), stop a reply midway,
// copy or regenerate a reply, set a system prompt, tune temperature and max tokens. Conversations
// are saved in IndexedDB and listed beside the chat (ui/conversation_list.ts).
// The model loads the first time the tab is opened (it is the biggest download of the app).
// The panel's data-state ("idle", "loading", "ready", "generating", "error") is for tests.

import type { ChatMessage, Engine, LoadOptions, ModelEntry } from "../engine/api";
import { ChatBubble } from "./chat_message";
import { ConversationList } from "./conversation_list";
import { newConversation, saveConversation, titleFrom, type Conversation } from "./conversation_store";
import { byId, clearErrors, setDetails, showDownload, showError, showRuntime } from "./status";

type State = "idle" | "loading" | "ready" | "generating" | "error";
type Outcome = "done" | "stopped" | "failed" | "discarded";

export class ChatTab {
  private readonly panel = byId("panel-chat");
  private readonly select = byId<HTMLSelectElement>("chat-model");
  private readonly log = byId("chat-log");
  private readonly input = byId<HTMLTextAreaElement>("chat-input");
  private readonly send = byId<HTMLButtonElement>("chat-send");
  private readonly stop = byId<HTMLButtonElement>("chat-stop");
  private readonly temperature = byId<HTMLInputElement>("chat-temperature");
  private readonly maxTokens = byId<HTMLInputElement>("chat-max-tokens");
  private readonly system = byId<HTMLTextAreaElement>("chat-system");
  private readonly pathLine = byId("chat-path");
  private readonly banner = byId("chat-banner");
  private readonly list = new ConversationList((c) => this.open(c), (id) => void this.deleted(id));
  private conversation: Conversation = newConversation("");
  private controller: AbortController | null = null;
  private loaded: string | null = null;
  private hasModels = false;

  /** @param onLoaded after a model loaded (the page then re-reads what the browser has cached) */
  constructor(private readonly engine: Engine, private readonly loadOptions: () => LoadOptions,
    private readonly onLoaded: () => void = () => undefined) {
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
    byId("chat-clear").addEventListener("click", () => this.open(newConversation(this.system.value)));
    this.system.addEventListener("change", () => {
      this.conversation.system = this.system.value;
      void this.save();
    });
    this.select.addEventListener("change", () => void this.load(this.select.value));
    byId("tab-chat").addEventListener("click", () => {
      if (this.hasModels && this.loaded === null && this.state !== "loading") void this.load(this.select.value);
    });
    this.setState("idle");
    void this.restore();
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
    for (const b of this.log.querySelectorAll<HTMLButtonElement>('[data-action="regenerate"]')) b.disabled = state !== "ready";
  }

  async load(id: string): Promise<void> {
    this.setState("loading");
    this.pathLine.textContent = `Loading ${id}…`;
    try {
      const result = await this.engine.loadLlm(id, { ...this.loadOptions(), onProgress: showDownload });
      const info = result.llm;
      showRuntime(result.runtime, result.runtimeReason);
      this.loaded = info.id;
      this.pathLine.textContent = `${info.id} is ready.`;
      setDetails(this.pathLine, `${info.runtime} · ${info.pathReason}`);
      this.pathLine.dataset["path"] = info.path;
      this.banner.hidden = info.trained && !info.note; // the note says e.g. "base model: plain completion"
      this.banner.textContent = info.trained ? info.note ?? "" : `${info.id} is an untrained test model: its replies are random words.`;
      this.setState("ready");
      this.input.focus();
      this.onLoaded();
    } catch (err) {
      this.loaded = null;
      this.pathLine.textContent = "";
      showError(err);
      this.setState("error");
    } finally {
      showDownload(null);
    }
  }

  /** Shows the latest saved conversation after a reload (no model needed to read it). */
  private async restore(): Promise<void> {
    try {
      const [latest] = await this.list.refresh(null);
      if (latest && this.conversation.messages.length === 0) this.open(latest);
    } catch (err) {
      showError(err);
    }
  }

  /** Switches to `c`: a running reply is aborted and dropped (it belonged to the old conversation). */
  private open(c: Conversation): void {
    this.controller?.abort();
    this.conversation = c;
    this.system.value = c.system;
    this.log.replaceChildren();
    c.messages.forEach((m, i) => this.show(m, i));
    void this.list.refresh(c.id).catch(showError);
  }

  private async deleted(id: string): Promise<void> {
    if (id === this.conversation.id) this.open(newConversation(this.system.value));
    else await this.list.refresh(this.conversation.id);
  }

  private async save(): Promise<void> {
    const c = this.conversation;
    if (c.messages.length === 0) return; // an empty chat is not worth a list entry
    c.updated = Date.now();
    try {
      await saveConversation(c);
      await this.list.refresh(this.conversation.id);
    } catch (err) {
      showError(err);
    }
  }

  /** Appends the bubble of message `index` of the current conversation. */
  private show(message: ChatMessage, index: number): ChatBubble {
    const bubble = new ChatBubble(message.role === "user" ? "user" : "assistant", message.content);
    bubble.item.dataset["index"] = String(index);
    if (bubble.role === "assistant") bubble.addActions({ regenerate: () => void this.regenerate(index) });
    this.log.append(bubble.item);
    return bubble;
  }

  private async ask(): Promise<void> {
    const text = this.input.value.trim();
    if (!text || this.state !== "ready") return;
    this.input.value = "";
    const c = this.conversation;
    if (c.messages.length === 0) c.title = titleFrom(text);
    c.messages.push({ role: "user", content: text });
    const question = this.show(c.messages.at(-1)!, c.messages.length - 1);
    if (await this.reply() === "failed") {
      // A turn that got no answer leaves the conversation; its text goes back to the input box.
      c.messages.pop();
      question.item.remove();
      this.input.value = text;
    }
  }

  /** Drops reply `index` (and anything after it) and asks again. */
  private async regenerate(index: number): Promise<void> {
    if (this.state !== "ready") return;
    const c = this.conversation;
    const removed = c.messages.splice(index);
    for (const li of Array.from(this.log.children) as HTMLElement[]) {
      if (Number(li.dataset["index"]) >= index) li.remove();
    }
    if (await this.reply() === "failed") {
      c.messages.push(...removed);
      this.open(c);
    }
  }

  /** Streams the assistant's answer to the current conversation into a new bubble. */
  private async reply(): Promise<Outcome> {
    const c = this.conversation;
    const bubble = new ChatBubble("assistant", "");
    this.log.append(bubble.item);
    bubble.item.dataset["status"] = "streaming";
    const controller = new AbortController();
    this.controller = controller;
    this.setState("generating");
    let content = "";
    let outcome: Outcome = "done";
    const maxTokens = this.maxTokens.value.trim();
    try {
      const stream = await this.engine.chat.completions.create({
        messages: [...(c.system.trim() ? [{ role: "system" as const, content: c.system.trim() }] : []), ...c.messages],
        stream: true,
        temperature: Number(this.temperature.value || "0.7"),
        // An empty field means the engine's default, not 0.
        max_tokens: maxTokens === "" ? undefined : Number(maxTokens),
        signal: controller.signal,
      });
      for await (const chunk of stream) {
        const choice = chunk.choices[0];
        content += choice?.delta.content ?? "";
        bubble.setText(content);
        bubble.item.scrollIntoView({ block: "end" });
        if (chunk.usage) bubble.note(stats(chunk.usage.completion_tokens, chunk.usage.extra?.decode_tokens_per_s,
          choice?.finish_reason ?? null));
      }
      clearErrors(); // an earlier failure is over
    } catch (err) {
      outcome = err instanceof DOMException && err.name === "AbortError" ? "stopped" : "failed";
      if (outcome === "failed") showError(err);
    } finally {
      if (this.controller === controller) this.controller = null;
      this.setState(this.loaded ? "ready" : "idle");
    }
    if (c !== this.conversation) return "discarded"; // New chat (or another conversation) took over
    if (outcome === "failed" || (outcome === "stopped" && !content)) {
      bubble.item.remove();
      return outcome;
    }
    bubble.item.dataset["status"] = outcome;
    if (outcome === "stopped") bubble.note("stopped");
    // A stopped reply stays in the conversation as far as it got, as chat apps do.
    c.messages.push({ role: "assistant", content });
    const index = c.messages.length - 1;
    bubble.item.dataset["index"] = String(index);
    bubble.addActions({ regenerate: () => void this.regenerate(index) });
    await this.save();
    return outcome;
  }
}

function stats(tokens: number, tokensPerSecond: number | undefined, finish: string | null): string {
  const speed = tokensPerSecond ? ` · ${tokensPerSecond.toFixed(1)} tok/s` : "";
  const cut = finish === "length" ? " · stopped at max tokens" : "";
  return `${tokens} tokens${speed}${cut}`;
}
