// Search tab: index a folder's images (File System Access API, or <input webkitdirectory>),
// keep the index in IndexedDB, rank the images against a text query by cosine similarity.

import { UnsupportedImageError, type Engine, type VisionModelInfo } from "../engine/api";
import { dot } from "../engine/vision/scoring";
import type { FewShotPanel } from "./fewshot";
import { attachMoreLikeThese } from "./fewshot_search";
import { byId, clearErrors, InputError, showError } from "./status";
import { clearImages, loadImages, saveImages, type IndexedImage } from "./storage";

const IMAGE_FILE = /\.(png|jpe?g|webp|gif|bmp|avif)$/i;
const BATCH = 8;
const THUMB = 160;
const SHOWN = 24;

type DirectoryHandle = { kind: "directory"; name: string; values(): AsyncIterable<DirectoryHandle | FileHandle> };
type FileHandle = { kind: "file"; name: string; getFile(): Promise<File> };
type PickerWindow = Window & { showDirectoryPicker?: () => Promise<DirectoryHandle> };

interface PickedFile {
  path: string;
  file: File;
}

async function walk(dir: DirectoryHandle, prefix: string, out: PickedFile[]): Promise<void> {
  for await (const entry of dir.values()) {
    const path = `${prefix}${entry.name}`;
    if (entry.kind === "directory") await walk(entry, `${path}/`, out);
    else if (IMAGE_FILE.test(entry.name)) out.push({ path, file: await entry.getFile() });
  }
}

async function thumbnail(file: File): Promise<Blob> {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, THUMB / Math.max(bitmap.width, bitmap.height));
  const canvas = new OffscreenCanvas(Math.max(1, Math.round(bitmap.width * scale)), Math.max(1, Math.round(bitmap.height * scale)));
  canvas.getContext("2d")!.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return canvas.convertToBlob({ type: "image/png" });
}

export class SearchTab {
  private model: VisionModelInfo | null = null;
  private entries: IndexedImage[] = [];
  private urls: string[] = [];
  private ranked: { e: IndexedImage; score: number }[] = [];

  constructor(private readonly engine: Engine, fewshot?: FewShotPanel) {
    if (fewshot) attachMoreLikeThese(engine, fewshot, { entries: () => this.entries, show: (ranked) => {
      this.ranked = ranked;
      this.render(SHOWN);
    } });
    const picker = (window as PickerWindow).showDirectoryPicker;
    const pickButton = byId<HTMLButtonElement>("folder-pick");
    pickButton.hidden = !picker;
    pickButton.addEventListener("click", () => void this.pickDirectory());
    const input = byId<HTMLInputElement>("folder-input");
    input.addEventListener("change", () => {
      const files = Array.from(input.files ?? []).filter((f) => IMAGE_FILE.test(f.name));
      void this.index(files.map((file) => ({ path: file.webkitRelativePath || file.name, file })));
      input.value = "";
    });
    byId("index-clear").addEventListener("click", () => void this.clear());
    byId("search-form").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.search();
    });
  }

  private get key(): string {
    return this.model ? `${this.model.id}@${this.model.revision}/${this.model.variant}` : "";
  }

  async modelReady(model: VisionModelInfo): Promise<void> {
    this.model = model;
    this.entries = await loadImages(this.key);
    this.setEnabled(true);
    this.showCount();
  }

  modelGone(): void {
    this.model = null;
    this.setEnabled(false);
  }

  private setEnabled(on: boolean): void {
    for (const id of ["folder-pick", "folder-input", "index-clear", "search-query", "search-run"]) {
      byId<HTMLInputElement | HTMLButtonElement>(id).disabled = !on;
    }
  }

  private showCount(): void {
    byId("index-status").textContent = this.entries.length
      ? `${this.entries.length} images indexed with ${this.model?.id} (${this.model?.variant}).`
      : "No folder indexed yet for this model.";
  }

  private async pickDirectory(): Promise<void> {
    let dir: DirectoryHandle;
    try {
      dir = await (window as PickerWindow).showDirectoryPicker!();
    } catch {
      return; // the user closed the picker
    }
    const files: PickedFile[] = [];
    await walk(dir, `${dir.name}/`, files);
    await this.index(files);
  }

  /** Embeds the images in batches; a file the browser cannot decode is skipped and reported. */
  private async embed(batch: PickedFile[], skipped: string[]): Promise<IndexedImage[]> {
    let embeddings: (Float32Array | null)[];
    try {
      embeddings = await this.engine.embedImages(batch.map((b) => b.file));
    } catch (err) {
      if (!(err instanceof UnsupportedImageError)) throw err;
      embeddings = [];
      for (const b of batch) {
        embeddings.push(await this.engine.embedImages([b.file]).then((e) => e[0]!, () => null));
      }
    }
    const out: IndexedImage[] = [];
    for (const [i, b] of batch.entries()) {
      const embedding = embeddings[i];
      if (!embedding) {
        skipped.push(b.path);
        continue;
      }
      out.push({ index: this.key, path: b.path, embedding, thumbnail: await thumbnail(b.file) });
    }
    return out;
  }

  private async index(files: PickedFile[]): Promise<void> {
    if (!this.model) return;
    clearErrors();
    const progress = byId<HTMLProgressElement>("index-progress");
    progress.hidden = false;
    progress.value = 0;
    const status = byId("index-status");
    if (files.length === 0) {
      status.textContent = "That folder has no images (PNG, JPEG, WebP, GIF, BMP, AVIF).";
      progress.hidden = true;
      return;
    }
    const skipped: string[] = [];
    const indexed: IndexedImage[] = [];
    this.setEnabled(false);
    try {
      await clearImages(this.key);
      for (let i = 0; i < files.length; i += BATCH) {
        indexed.push(...await this.embed(files.slice(i, i + BATCH), skipped));
        progress.value = Math.min(i + BATCH, files.length) / files.length;
        status.textContent = `Indexing… ${Math.min(i + BATCH, files.length)} / ${files.length}`;
      }
      await saveImages(indexed);
      this.entries = indexed;
      this.showCount();
      if (skipped.length) {
        showError(new UnsupportedImageError(`${skipped.length} file(s) could not be read as images and were skipped: ${skipped.join(", ")}`));
      }
    } catch (err) {
      showError(err);
    } finally {
      progress.hidden = true;
      this.setEnabled(true);
    }
  }

  private async clear(): Promise<void> {
    await clearImages(this.key);
    this.entries = [];
    this.ranked = [];
    this.render(0);
    this.showCount();
  }

  private async search(): Promise<void> {
    const query = byId<HTMLInputElement>("search-query").value.trim();
    if (!query || this.entries.length === 0) {
      if (!this.entries.length) showError(new InputError("Index a folder first", "Choose a folder of images above, then search it."));
      return;
    }
    try {
      const [text] = await this.engine.embedTexts([query]);
      const ranked = this.entries.map((e) => ({ e, score: dot(e.embedding, text!) })).sort((a, b) => b.score - a.score);
      this.ranked = ranked;
      this.render(SHOWN);
    } catch (err) {
      showError(err);
    }
  }

  /** Shows the best `count` of the last ranking; "More results" adds the next page. */
  private render(count: number): void {
    const ranked = this.ranked.slice(0, count);
    this.urls.forEach((u) => URL.revokeObjectURL(u));
    this.urls = ranked.map((r) => URL.createObjectURL(r.e.thumbnail));
    const more = byId<HTMLButtonElement>("search-more");
    const left = this.ranked.length - ranked.length;
    more.hidden = left <= 0;
    more.textContent = `More results (${left} more)`;
    more.onclick = () => this.render(count + SHOWN);
    byId("search-results").replaceChildren(...ranked.map((r, i) => {
      const li = document.createElement("li");
      li.className = "thumb";
      li.dataset["path"] = r.e.path;
      li.dataset["score"] = String(r.score);
      const img = document.createElement("img");
      img.src = this.urls[i]!;
      img.alt = r.e.path;
      const caption = document.createElement("span");
      caption.textContent = `${i + 1}. ${r.e.path.split("/").pop()} · ${r.score.toFixed(3)}`;
      li.append(img, caption);
      return li;
    }));
  }
}
