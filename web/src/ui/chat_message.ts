// One chat bubble: the user's text as typed, the assistant's rendered as Markdown, and under each
// assistant reply a Copy button (the reply's Markdown source) and a Regenerate button.

import { renderMarkdown } from "./markdown";

export interface BubbleActions {
  regenerate: () => void;
}

export class ChatBubble {
  readonly item = document.createElement("li");
  readonly body = document.createElement("div");
  private text = "";

  constructor(readonly role: "user" | "assistant", text: string) {
    this.item.className = `chat-msg ${role}`;
    this.item.dataset["role"] = role;
    this.body.className = "chat-text";
    this.item.append(this.body);
    this.setText(text);
  }

  get content(): string {
    return this.text;
  }

  setText(text: string): void {
    this.text = text;
    if (this.role === "assistant") renderMarkdown(this.body, text);
    else this.body.textContent = text;
  }

  note(text: string): void {
    const note = document.createElement("small");
    note.className = "chat-note";
    note.textContent = text;
    this.item.append(note);
  }

  /** Copy and Regenerate under a finished (or stopped) reply. */
  addActions(actions: BubbleActions): void {
    const bar = document.createElement("div");
    bar.className = "chat-actions";
    const copy = button("Copy", "copy");
    copy.addEventListener("click", () => {
      navigator.clipboard.writeText(this.text).then(
        () => flash(copy, "Copied"),
        () => flash(copy, "Copy failed: the browser refused clipboard access"),
      );
    });
    const again = button("Regenerate", "regenerate");
    again.addEventListener("click", actions.regenerate);
    bar.append(copy, again);
    this.item.append(bar);
  }
}

function button(text: string, action: string): HTMLButtonElement {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "small";
  b.dataset["action"] = action;
  b.textContent = text;
  return b;
}

function flash(b: HTMLButtonElement, text: string): void {
  const before = b.dataset["action"] === "copy" ? "Copy" : b.textContent;
  b.textContent = text;
  b.dataset["done"] = "true";
  setTimeout(() => {
    b.textContent = before;
    delete b.dataset["done"];
  }, 1500);
}
