// Saved few-shot classifiers in IndexedDB (in the worker), one record per classifier, indexed by
// the vision model (id@revision) whose embeddings it was trained on.

import type { ClassifierFile } from "./record";

const DB_NAME = "lumen-fewshot";
const STORE = "classifiers";

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

let opened: Promise<IDBDatabase> | null = null;

function open(): Promise<IDBDatabase> {
  opened ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "id" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return opened;
}

async function store(mode: IDBTransactionMode): Promise<IDBObjectStore> {
  return (await open()).transaction(STORE, mode).objectStore(STORE);
}

export async function saveClassifier(file: ClassifierFile): Promise<void> {
  await request((await store("readwrite")).put(file));
}

export async function getClassifier(id: string): Promise<ClassifierFile | undefined> {
  return request((await store("readonly")).get(id)) as Promise<ClassifierFile | undefined>;
}

/** Every saved classifier, newest first. */
export async function listClassifiers(): Promise<ClassifierFile[]> {
  const all = (await request((await store("readonly")).getAll())) as ClassifierFile[];
  return all.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

export async function deleteClassifier(id: string): Promise<void> {
  await request((await store("readwrite")).delete(id));
}
