// What Lumen keeps in the browser:
// * the search index in IndexedDB: one record per image file, per model revision and variant
//   (embeddings of different models are not comparable);
// * the Storage tab: the offline model cache (engine.storage: cached models with sizes, unfinished
//   downloads, delete per model, delete all), the other data (search indexes, FuDD's saved LLM
//   descriptions) with sizes, what the browser counts for the site in all, and whether the service
//   worker has made the app available offline. Every delete asks first (confirm.ts).

import type { Engine, StorageReport } from "../engine/api";
import { confirmAction } from "./confirm";
import { byId, showError } from "./status";

const DB_NAME = "lumen";
const STORE = "images";

export interface IndexedImage {
  index: string; // which model made the embedding
  path: string;
  embedding: Float32Array;
  thumbnail: Blob;
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

let db: Promise<IDBDatabase> | null = null;

function open(): Promise<IDBDatabase> {
  db ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      const store = req.result.createObjectStore(STORE, { keyPath: ["index", "path"] });
      store.createIndex("by-index", "index");
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return db;
}

async function store(mode: IDBTransactionMode): Promise<IDBObjectStore> {
  return (await open()).transaction(STORE, mode).objectStore(STORE);
}

export async function saveImages(images: IndexedImage[]): Promise<void> {
  const s = await store("readwrite");
  await Promise.all(images.map((img) => request(s.put(img))));
}

export async function loadImages(index: string): Promise<IndexedImage[]> {
  const s = await store("readonly");
  return request(s.index("by-index").getAll(IDBKeyRange.only(index))) as Promise<IndexedImage[]>;
}

export interface IndexUsage {
  /** The index key: "<model id>@<revision>/<variant>" (search.ts). */
  index: string;
  images: number;
  /** Embeddings, thumbnails and paths: about what IndexedDB stores, without its own overhead. */
  bytes: number;
}

/** Every search index with its image count and size, largest first. */
export async function indexUsage(): Promise<IndexUsage[]> {
  const all = (await request((await store("readonly")).getAll())) as IndexedImage[];
  const out = new Map<string, IndexUsage>();
  const encoder = new TextEncoder();
  for (const img of all) {
    const usage = out.get(img.index) ?? { index: img.index, images: 0, bytes: 0 };
    usage.images += 1;
    usage.bytes += img.embedding.byteLength + img.thumbnail.size + encoder.encode(img.path).length;
    out.set(img.index, usage);
  }
  return [...out.values()].sort((a, b) => b.bytes - a.bytes);
}

export async function clearImages(index: string): Promise<void> {
  const s = await store("readwrite");
  const keys = await request(s.index("by-index").getAllKeys(IDBKeyRange.only(index)));
  await Promise.all(keys.map((k) => request(s.delete(k))));
}

/** "1.23 MB" (two decimals below 10 MB), "4.5 kB" below 0.1 MB: the size format of the Storage tab and the pickers. */
export function megabytes(bytes: number): string {
  if (bytes < 1e5) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 2 : 1)} MB`;
}

function element<K extends keyof HTMLElementTagNameMap>(tag: K, text = "", className = ""): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  el.textContent = text;
  if (className) el.className = className;
  return el;
}

/** Service worker state, in words: does this page work with the network off? */
async function offlineState(): Promise<string> {
  if (!("serviceWorker" in navigator)) return "Offline use is not available: this browser has no service workers.";
  const registration = await navigator.serviceWorker.getRegistration();
  if (!registration) return "Offline use: not set up (the service worker is not registered; it is in production builds only).";
  if (registration.active) return "Offline use: ready. The app and its runtime are cached; cached models below work without the server.";
  return "Offline use: caching the app… (it works offline once this finishes)";
}

/** The index key "<id>@<revision>/<variant>" in words. */
function indexName(key: string): string {
  const at = key.lastIndexOf("@");
  const slash = key.lastIndexOf("/");
  return at > 0 && slash > at ? `${key.slice(0, at)} (${key.slice(slash + 1)})` : key;
}

/** The summary line: the models' bytes on disk, then the browser's own figure and why it is larger. */
export function summaryText(report: StorageReport): string {
  const rowsTotal = report.models.reduce((s, m) => s + m.bytes, 0);
  const extra = [
    report.partialBytes ? `${megabytes(report.partialBytes)} of unfinished downloads (they resume on the next load)` : "",
    report.orphanBytes ? `${megabytes(report.orphanBytes)} of old files no current model uses ("Delete all models" removes them)` : "",
  ].filter(Boolean);
  const shared = rowsTotal > report.modelBytes
    ? " Models that share a file (such as a tokenizer) store it once, so the rows below add up to more." : "";
  const usage = report.usage === null
    ? "This browser does not say how much it stores for this site."
    : `The browser counts ${megabytes(report.usage)} for this site in all` +
      (report.quota === null ? "" : ` and allows up to ${megabytes(report.quota)}`) +
      ": that also holds the app's own offline copy, search indexes, saved chats and classifiers, and the browser's" +
      " bookkeeping, so it is larger than the models alone.";
  return `Models: ${megabytes(report.modelBytes)} stored in this browser for offline use` +
    `${extra.length ? `, plus ${extra.join(" and ")}` : ""}.${shared} ${usage} ` +
    (report.persisted ? "The browser keeps this storage (persistent)." : "The browser may clear this storage when the disk fills up.");
}

/** The Storage tab, added to the page's tab list by mount(). */
export class StoragePanel {
  /** @param onDeleted called after anything was deleted (the Search tab reloads its index, the pickers their marks). */
  constructor(private readonly engine: Engine, private readonly onDeleted: () => void = () => undefined) {}

  /** Adds the tab and its panel (before the tabs are wired up in main.ts). */
  mount(): void {
    const tab = element("button", "Storage");
    Object.assign(tab, { id: "tab-storage", tabIndex: -1 });
    tab.setAttribute("role", "tab");
    tab.setAttribute("aria-controls", "panel-storage");
    tab.setAttribute("aria-selected", "false");
    tab.addEventListener("click", () => void this.refresh());
    document.querySelector('[role="tablist"]')!.append(tab);

    const panel = element("section", "", "panel");
    Object.assign(panel, { id: "panel-storage", hidden: true });
    panel.setAttribute("role", "tabpanel");
    panel.setAttribute("aria-labelledby", "tab-storage");
    const clear = element("button", "Delete all models");
    clear.id = "storage-clear";
    clear.addEventListener("click", () => void this.clearAll());
    const offline = element("p", "", "index-status");
    offline.id = "storage-offline";
    const summary = element("p", "", "index-status");
    summary.id = "storage-summary";
    summary.setAttribute("role", "status");
    const models = element("table");
    models.id = "storage-models";
    models.setAttribute("aria-label", "Cached models");
    const data = element("table");
    data.id = "storage-data";
    data.setAttribute("aria-label", "Other data saved in this browser");
    const stack = element("div", "", "stack");
    const row = element("div", "", "row");
    row.append(clear);
    stack.append(offline, summary, element("h3", "Models"), models, row, element("h3", "Other data"), data);
    panel.append(stack);
    document.querySelector("main")!.append(panel);
  }

  /** Re-reads the cache; called when the tab opens and after a model loads. */
  async refresh(): Promise<void> {
    try {
      byId("storage-offline").textContent = await offlineState();
      const report = await this.engine.storage.report();
      this.render(report);
      this.renderData(report, await indexUsage());
    } catch (err) {
      showError(err);
    }
  }

  /** Asks first; only when confirmed runs `action`, then re-reads. */
  private async confirmed(message: string, label: string, action: () => Promise<void>): Promise<void> {
    if (!(await confirmAction(message, label))) return;
    try {
      await action();
    } catch (err) {
      showError(err);
    }
    this.onDeleted();
    await this.refresh();
  }

  private async clearAll(): Promise<void> {
    const report = await this.engine.storage.report();
    const total = report.modelBytes + report.partialBytes + report.orphanBytes;
    await this.confirmed(`Delete every cached model file (${megabytes(total)}) from this browser? ` +
      "Each model downloads again the next time you load it.", "Delete all models", () => this.engine.storage.clear());
  }

  private render(report: StorageReport): void {
    byId("storage-summary").textContent = summaryText(report);
    const table = byId<HTMLTableElement>("storage-models");
    const head = element("tr");
    head.append(element("th", "Model"), element("th", "Size"), element("th", "State"), element("th", ""));
    const rows = report.models.map((m) => {
      const row = element("tr");
      row.dataset["model"] = m.id;
      row.dataset["bytes"] = String(m.bytes);
      const unfinished = m.partialFiles > 0;
      const state = element("td", "", unfinished ? "storage-state partial" : "storage-state");
      state.textContent = unfinished
        ? `Unfinished download: ${megabytes(m.partialBytes)} received of ${m.partialFiles} file${m.partialFiles > 1 ? "s" : ""}; ` +
          `it resumes on the next load. ${m.cachedFiles} of ${m.totalFiles} files complete.`
        : `Cached: ${m.cachedFiles} of ${m.totalFiles} files (those of the variants loaded so far)`;
      row.dataset["state"] = unfinished ? "partial" : "cached";
      const remove = element("button", "Delete");
      remove.setAttribute("aria-label", `Delete ${m.id} from this browser`);
      remove.addEventListener("click", () => void this.confirmed(
        `Delete ${m.id} (${megabytes(m.bytes + m.partialBytes)}) from this browser? It downloads again the next time you load it.`,
        "Delete", () => this.engine.storage.deleteModel(m.id)));
      const action = element("td");
      action.append(remove);
      row.append(element("td", m.id), element("td", megabytes(m.bytes)), state, action);
      return row;
    });
    if (rows.length === 0) rows.push(emptyRow("No models are cached. Loading a model caches it for offline use.", 4));
    table.replaceChildren(head, ...rows);
    byId<HTMLButtonElement>("storage-clear").disabled = report.models.length === 0 && !report.partialBytes && !report.orphanBytes;
  }

  /** Search indexes and FuDD's saved descriptions (the few-shot classifiers have their own section). */
  private renderData(report: StorageReport, indexes: IndexUsage[]): void {
    const head = element("tr");
    head.append(element("th", "What"), element("th", "Items"), element("th", "Size"), element("th", ""));
    const row = (kind: string, what: string, items: string, bytes: number, ask: string, action: () => Promise<void>) => {
      const tr = element("tr");
      tr.dataset["kind"] = kind;
      tr.dataset["bytes"] = String(bytes);
      const remove = element("button", "Delete");
      remove.setAttribute("aria-label", `Delete ${what}`);
      remove.addEventListener("click", () => void this.confirmed(ask, "Delete", action));
      const cell = element("td");
      cell.append(remove);
      tr.append(element("td", what), element("td", items), element("td", megabytes(bytes)), cell);
      return tr;
    };
    const rows = indexes.map((ix) => {
      const name = `Search index of ${indexName(ix.index)}`;
      const tr = row("search-index", name, `${ix.images} image${ix.images === 1 ? "" : "s"}`, ix.bytes,
        `Delete the ${name.toLowerCase()} (${ix.images} images)? Search then needs the images indexed again.`,
        () => clearImages(ix.index));
      tr.dataset["index"] = ix.index;
      return tr;
    });
    const d = report.descriptions;
    if (d.answers > 0) {
      rows.push(row("descriptions", "Ask the LLM: saved descriptions", `${d.answers} answer${d.answers === 1 ? "" : "s"}`, d.bytes,
        `Delete ${d.answers} saved LLM descriptions? "Ask the LLM" then asks the chat model again (it needs the chat model loaded).`,
        () => this.engine.storage.clearDescriptions()));
    }
    if (rows.length === 0) rows.push(emptyRow("No search index and no saved descriptions yet.", 4));
    byId<HTMLTableElement>("storage-data").replaceChildren(head, ...rows);
  }
}

function emptyRow(text: string, columns: number): HTMLTableRowElement {
  const row = element("tr");
  const cell = element("td", text);
  cell.colSpan = columns;
  row.append(cell);
  return row;
}
