// FuDD's description cache in IndexedDB (in the worker): the chat model's raw answer for each class
// pair, so a second run on the same labels asks the LLM nothing and works offline. The raw answer is
// kept, not the parsed features: a stricter parser applies to old answers too.

export interface CachedAnswer {
  key: string;
  /** decode(tokenIds without the stop token) */
  text: string;
  tokenIds: number[];
  savedAt: number;
}

export interface AnswerCache {
  /** "indexeddb", or "memory (why)" where IndexedDB cannot open (some private modes) */
  readonly kind: string;
  get(key: string): Promise<CachedAnswer | undefined>;
  put(answer: CachedAnswer): Promise<void>;
}

const DB_NAME = "lumen-fudd";
const STORE = "answers";

/**
 * One answer per chat model revision, prompt version, pairs asked and sorted class pair: any of
 * them changing changes what the LLM would write.
 */
export function answerKey(model: { id: string; revision: string }, promptVersion: number | string, n: number,
  labels: [string, string]): string {
  return JSON.stringify([model.id, model.revision, promptVersion, n, ...labels]);
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

class IndexedDbCache implements AnswerCache {
  readonly kind = "indexeddb";

  constructor(private readonly db: IDBDatabase) {}

  async get(key: string): Promise<CachedAnswer | undefined> {
    return request(this.db.transaction(STORE, "readonly").objectStore(STORE).get(key));
  }

  async put(answer: CachedAnswer): Promise<void> {
    await request(this.db.transaction(STORE, "readwrite").objectStore(STORE).put(answer));
  }
}

class MemoryCache implements AnswerCache {
  private readonly answers = new Map<string, CachedAnswer>();

  constructor(readonly kind: string) {}

  async get(key: string): Promise<CachedAnswer | undefined> {
    return this.answers.get(key);
  }

  async put(answer: CachedAnswer): Promise<void> {
    this.answers.set(answer.key, answer);
  }
}

let database: Promise<IDBDatabase> | null = null;

/** The database, opened once per context (the worker asks and stores; the Storage tab counts and clears). */
function openDatabase(): Promise<IDBDatabase> {
  database ??= new Promise<IDBDatabase>((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "key" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return database;
}

let opened: Promise<AnswerCache> | null = null;

/** The worker's cache, opened once; where IndexedDB fails, a per-session memory cache that says so. */
export function answerCache(): Promise<AnswerCache> {
  opened ??= openDatabase().then((db): AnswerCache => new IndexedDbCache(db),
    (err: unknown) => new MemoryCache(`memory (IndexedDB failed: ${String(err)})`));
  return opened;
}

export interface AnswerCacheUsage {
  answers: number;
  /** The answers' size as JSON (UTF-8): about what IndexedDB stores, without its own overhead. */
  bytes: number;
}

/** How many answers are saved and their size (the Storage tab). */
export async function answerCacheUsage(): Promise<AnswerCacheUsage> {
  const all = await request((await openDatabase()).transaction(STORE, "readonly").objectStore(STORE).getAll());
  const encoder = new TextEncoder();
  return { answers: all.length, bytes: all.reduce((s: number, a) => s + encoder.encode(JSON.stringify(a)).length, 0) };
}

/** Forgets every saved answer: the next FuDD run asks the LLM again. */
export async function clearAnswerCache(): Promise<void> {
  await request((await openDatabase()).transaction(STORE, "readwrite").objectStore(STORE).clear());
}
