// Saved chat conversations in IndexedDB (database "lumen-chat"), so they survive reloads and work
// offline. Each record is one whole conversation; the list is small, so it is read in full.

import { openDB, type DBSchema, type IDBPDatabase } from "idb";
import type { ChatMessage } from "../engine/api";

export interface Conversation {
  id: string;
  title: string;
  /** The system prompt ("" for none). */
  system: string;
  /** User and assistant turns, in order. */
  messages: ChatMessage[];
  /** Milliseconds since the epoch: the list shows the latest first. */
  updated: number;
}

interface ChatDb extends DBSchema {
  conversations: { key: string; value: Conversation };
}

let db: Promise<IDBPDatabase<ChatDb>> | null = null;

function open(): Promise<IDBPDatabase<ChatDb>> {
  db ??= openDB<ChatDb>("lumen-chat", 1, {
    upgrade(database) {
      database.createObjectStore("conversations", { keyPath: "id" });
    },
  });
  return db;
}

export function newConversation(system: string): Conversation {
  return { id: crypto.randomUUID(), title: "New chat", system, messages: [], updated: Date.now() };
}

/** The title a conversation gets from its first question. */
export function titleFrom(text: string): string {
  const line = text.split("\n")[0]!.trim();
  return line.length > 48 ? `${line.slice(0, 47)}…` : line || "New chat";
}

export async function listConversations(): Promise<Conversation[]> {
  const all = await (await open()).getAll("conversations");
  return all.sort((a, b) => b.updated - a.updated);
}

export async function saveConversation(conversation: Conversation): Promise<void> {
  await (await open()).put("conversations", conversation);
}

export async function deleteConversation(id: string): Promise<void> {
  await (await open()).delete("conversations", id);
}

/** The stored bytes, roughly (JSON length): for the Storage tab. */
export async function conversationBytes(): Promise<{ count: number; bytes: number }> {
  const all = await listConversations();
  return { count: all.length, bytes: all.reduce((sum, c) => sum + JSON.stringify(c).length, 0) };
}
