// The search index in IndexedDB: one record per image file, per model revision and variant
// (embeddings of different models are not comparable).

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
