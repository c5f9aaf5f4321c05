// The list of saved conversations beside the chat: open one, rename it, delete it (after a
// confirmation). The current one is marked with aria-current.

import { deleteConversation, listConversations, saveConversation, type Conversation } from "./conversation_store";
import { byId } from "./status";

export class ConversationList {
  private readonly list = byId<HTMLUListElement>("chat-list");
  private current: string | null = null;

  /** `onOpen` shows a conversation; `onDeleted` is told which one went (the chat may be showing it). */
  constructor(private readonly onOpen: (c: Conversation) => void, private readonly onDeleted: (id: string) => void) {}

  async refresh(currentId: string | null): Promise<Conversation[]> {
    this.current = currentId;
    const all = await listConversations();
    this.list.replaceChildren(...all.map((c) => this.item(c, c.id === currentId)));
    return all;
  }

  private item(c: Conversation, current: boolean): HTMLLIElement {
    const li = document.createElement("li");
    li.dataset["id"] = c.id;
    const open = document.createElement("button");
    open.type = "button";
    open.className = "chat-list-open";
    open.textContent = c.title;
    open.title = c.title;
    if (current) open.setAttribute("aria-current", "true");
    open.addEventListener("click", () => this.onOpen(c));
    const rename = this.action("✎", `Rename "${c.title}"`, "rename", async () => {
      const title = prompt("New name for this conversation", c.title)?.trim();
      if (!title) return;
      await saveConversation({ ...c, title });
      await this.refresh(this.current);
    });
    const remove = this.action("✕", `Delete "${c.title}"`, "delete", async () => {
      if (!confirm(`Delete the conversation "${c.title}"? This cannot be undone.`)) return;
      await deleteConversation(c.id);
      this.onDeleted(c.id);
    });
    li.append(open, rename, remove);
    return li;
  }

  private action(icon: string, label: string, kind: string, run: () => Promise<void>): HTMLButtonElement {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "icon";
    button.dataset["action"] = kind;
    button.textContent = icon;
    button.setAttribute("aria-label", label);
    button.title = label;
    button.addEventListener("click", () => void run());
    return button;
  }
}
