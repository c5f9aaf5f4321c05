// What Lumen keeps in the browser:
// * the search index in IndexedDB: one record per image file, per model revision and variant
//   (embeddings of different models are not comparable);
// * the Storage tab: the offline model cache (engine.storage: cached models with sizes, delete
//   per model, delete all), the storage quota, and whether the service worker has made the app
//   available offline.

import type { Engine, StorageReport } from "../engine/api";
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

export async function clearImages(index: string): Promise<void> {
  const s = await store("readwrite");
  const keys = await request(s.index("by-index").getAllKeys(IDBKeyRange.only(index)));
  await Promise.all(keys.map((k) => request(s.delete(k))));
}

function megabytes(bytes: number): string {
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

/** The Storage tab, added to the page's tab list by mount(). */
export class StoragePanel {
  constructor(private readonly engine: Engine) {}

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
    clear.addEventListener("click", () => void this.run(() => this.engine.storage.clear()));
    const offline = element("p", "", "index-status");
    offline.id = "storage-offline";
    const summary = element("p", "", "index-status");
    summary.id = "storage-summary";
    summary.setAttribute("role", "status");
    const list = element("table");
    list.id = "storage-models";
    list.setAttribute("aria-label", "Cached models");
    panel.append(element("div", "", "stack"));
    panel.firstElementChild!.append(offline, summary, list, element("div", "", "row"));
    panel.firstElementChild!.lastElementChild!.append(clear);
    document.querySelector("main")!.append(panel);
  }

  /** Re-reads the cache; called when the tab opens and after a model loads. */
  async refresh(): Promise<void> {
    try {
      byId("storage-offline").textContent = await offlineState();
      this.render(await this.engine.storage.report());
    } catch (err) {
      showError(err);
    }
  }

  private async run(action: () => Promise<void>): Promise<void> {
    try {
      await action();
    } catch (err) {
      showError(err);
    }
    await this.refresh();
  }

  private render(report: StorageReport): void {
    const cached = report.models.reduce((s, m) => s + m.bytes, 0);
    const quota = report.quota === null ? "unknown" : megabytes(report.quota);
    const extra = [
      report.partialBytes ? `${megabytes(report.partialBytes)} of unfinished downloads (resumed on the next load)` : "",
      report.orphanBytes ? `${megabytes(report.orphanBytes)} of files no current model uses` : "",
    ].filter(Boolean).join("; ");
    byId("storage-summary").textContent =
      `Models: ${megabytes(cached)} cached${extra ? `; ${extra}` : ""}. Browser storage used by Lumen: ` +
      `${report.usage === null ? "unknown" : megabytes(report.usage)} of ${quota}. ` +
      (report.persisted ? "The browser keeps this storage (persistent)." : "The browser may clear this storage when the disk fills up.");
    const table = byId<HTMLTableElement>("storage-models");
    const head = element("tr");
    head.append(element("th", "Model"), element("th", "Size"), element("th", "Files"), element("th", ""));
    const rows = report.models.map((m) => {
      const row = element("tr");
      row.dataset["model"] = m.id;
      const remove = element("button", "Delete");
      remove.setAttribute("aria-label", `Delete ${m.id} from this browser`);
      remove.addEventListener("click", () => void this.run(() => this.engine.storage.deleteModel(m.id)));
      const action = element("td");
      action.append(remove);
      row.append(element("td", m.id), element("td", megabytes(m.bytes)), element("td", `${m.cachedFiles} of ${m.totalFiles}`), action);
      return row;
    });
    if (rows.length === 0) {
      const empty = element("tr");
      const cell = element("td", "No models are cached. Loading a model caches it for offline use.");
      cell.colSpan = 4;
      empty.append(cell);
      rows.push(empty);
    }
    table.replaceChildren(head, ...rows);
    byId<HTMLButtonElement>("storage-clear").disabled = report.models.length === 0 && !report.partialBytes && !report.orphanBytes;
  }
}
