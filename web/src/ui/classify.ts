// Classify tab: drop or pick images, labels one per line (or a preset), ranked bars per image.

import { UnsupportedImageError, type Engine, type LabelScore } from "../engine/api";
import type { FewShotPanel } from "./fewshot";
import type { FuddPanel } from "./fudd";
import { byId, clearErrors, InputError, showError } from "./status";

const PRESETS: Record<string, string[]> = {
  Animals: ["cat", "dog", "bird", "horse", "fish", "rabbit"],
  Vehicles: ["car", "bicycle", "bus", "airplane", "boat", "train"],
  Scenes: ["beach", "forest", "city street", "mountain", "kitchen", "office"],
  Food: ["pizza", "salad", "sushi", "cake", "soup", "burger"],
};

/** Rows shown before "show all": long label lists would otherwise bury the image. */
const TOP_ROWS = 10;

/** Ranked score bars, best first (data-label/data-score on each row for tests); the top 10, then "show all". */
export function scoreBars(scores: LabelScore[], ariaLabel: string): HTMLElement {
  const bars = document.createElement("ol");
  bars.className = "bars";
  bars.setAttribute("aria-label", ariaLabel);
  for (const [i, s] of scores.entries()) {
    const li = document.createElement("li");
    li.className = "bar";
    li.hidden = i >= TOP_ROWS;
    li.dataset["label"] = s.label;
    li.dataset["score"] = String(s.score);
    const name = document.createElement("span");
    name.className = "bar-label";
    name.textContent = s.label;
    name.title = s.label; // the full text when the column cuts it
    const track = document.createElement("span");
    track.className = "bar-track";
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.setProperty("width", `${(s.score * 100).toFixed(2)}%`);
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = `${(s.score * 100).toFixed(1)}%`;
    li.append(name, track, value);
    bars.append(li);
  }
  if (scores.length <= TOP_ROWS) return bars;
  const more = document.createElement("button");
  more.type = "button";
  more.className = "show-all";
  more.textContent = `Show all ${scores.length}`;
  more.addEventListener("click", () => {
    bars.querySelectorAll<HTMLElement>(".bar").forEach((li) => (li.hidden = false));
    more.remove();
  });
  const box = document.createElement("div");
  box.append(bars, more);
  return box;
}

/** Labels one per line, trimmed, blank lines and repeats dropped (a repeat would split its score). */
export function parseLabels(text: string): string[] {
  return [...new Set(text.split("\n").map((l) => l.trim()).filter(Boolean))];
}

/** Whether the browser can decode the file (the worker would otherwise fail the whole batch on it). */
async function decodable(file: File): Promise<boolean> {
  try {
    (await createImageBitmap(file)).close();
    return true;
  } catch {
    return false;
  }
}

export class ClassifyTab {
  private files: File[] = [];
  private ready = false;
  private urls: string[] = [];

  /** `fudd`: the "Ask the LLM" panel (ui/fudd.ts), which takes over the run when its toggle is on. */
  /** `fewshot`: "Teach by example" (ui/fewshot.ts): "this is X" on each result, adapted scores beside them. */
  constructor(private readonly engine: Engine, private readonly fudd?: FuddPanel, private readonly fewshot?: FewShotPanel) {
    const preset = byId<HTMLSelectElement>("label-preset");
    preset.append(new Option("Custom", ""), ...Object.keys(PRESETS).map((name) => new Option(name, name)));
    preset.addEventListener("change", () => {
      const labels = PRESETS[preset.value];
      if (labels) byId<HTMLTextAreaElement>("labels").value = labels.join("\n");
    });
    preset.value = "Animals";
    const labelBox = byId<HTMLTextAreaElement>("labels");
    labelBox.value = PRESETS["Animals"]!.join("\n");
    // Edited labels are no longer the preset: the picker says "Custom".
    labelBox.addEventListener("input", () => {
      const same = PRESETS[preset.value]?.join("\n") === parseLabels(labelBox.value).join("\n");
      if (!same) preset.value = "";
    });

    const input = byId<HTMLInputElement>("classify-files");
    input.addEventListener("change", () => this.pick(Array.from(input.files ?? [])));
    const zone = byId("drop-zone");
    zone.addEventListener("dragover", (e) => {
      e.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      this.pick(Array.from(e.dataTransfer?.files ?? []));
    });
    byId("classify-run").addEventListener("click", () => void this.run());
  }

  /** Called when a model finished loading: sets its default prompt. */
  modelReady(template: string): void {
    this.ready = true;
    const input = byId<HTMLInputElement>("template");
    input.placeholder = template;
    input.value = template;
    this.updateButton();
  }

  modelGone(): void {
    this.ready = false;
    this.updateButton();
  }

  private pick(files: File[]): void {
    this.files = files;
    const list = byId("classify-picked");
    list.replaceChildren(...files.map((f) => {
      const li = document.createElement("li");
      li.textContent = f.name;
      return li;
    }));
    this.updateButton();
  }

  private updateButton(): void {
    byId<HTMLButtonElement>("classify-run").disabled = !this.ready || this.files.length === 0;
  }

  private async run(): Promise<void> {
    const labels = parseLabels(byId<HTMLTextAreaElement>("labels").value);
    clearErrors();
    if (labels.length === 0) {
      showError(new InputError("Add at least one label", "Type the labels to choose from, one per line, or pick a preset."));
      return;
    }
    // This run's images: picking other files while it runs must not move its results.
    const files = this.files.slice();
    const button = byId<HTMLButtonElement>("classify-run");
    button.disabled = true;
    button.textContent = "Classifying…";
    const results = byId("classify-results");
    results.setAttribute("aria-busy", "true");
    try {
      const template = byId<HTMLInputElement>("template").value || undefined;
      const ok = await Promise.all(files.map(decodable));
      const good = files.filter((_, i) => ok[i]);
      const bad = files.filter((_, i) => !ok[i]);
      if (bad.length) {
        showError(new UnsupportedImageError(`${bad.map((f) => f.name).join(", ")}: not an image this browser can read, so `
          + `${bad.length === 1 ? "it was" : "they were"} skipped`, "use a PNG, JPEG, WebP, GIF or BMP file"));
      }
      if (good.length === 0) {
        results.replaceChildren(...bad.map((f) => this.failedCard(f)));
        return;
      }
      if (this.fudd?.enabled) {
        await this.fudd.classify(good, labels, template);
        results.append(...bad.map((f) => this.failedCard(f)));
        return;
      }
      const ranked = await this.engine.classify({ images: good, labels, template });
      this.render(good, ranked, bad);
      this.fewshot?.showResults(good);
    } catch (err) {
      showError(err);
    } finally {
      button.textContent = "Classify";
      results.removeAttribute("aria-busy");
      this.updateButton();
    }
  }

  /** `files[i]` is the image `ranked[i]` was computed for; `failed` could not be read. */
  private render(files: File[], ranked: LabelScore[][], failed: File[]): void {
    this.urls.forEach((u) => URL.revokeObjectURL(u));
    this.urls = files.map((f) => URL.createObjectURL(f));
    const cards = ranked.map((scores, i) => {
      const card = document.createElement("article");
      card.className = "result-card";
      const img = document.createElement("img");
      img.src = this.urls[i]!;
      img.alt = files[i]!.name;
      const title = document.createElement("h3");
      title.textContent = files[i]!.name;
      card.append(img, title, scoreBars(scores, `Labels for ${files[i]!.name}, best first`));
      return card;
    });
    byId("classify-results").replaceChildren(...cards, ...failed.map((f) => this.failedCard(f)));
  }

  private failedCard(file: File): HTMLElement {
    const card = document.createElement("article");
    card.className = "result-card";
    card.dataset["failed"] = "";
    const title = document.createElement("h3");
    title.textContent = file.name;
    const why = document.createElement("p");
    why.textContent = "Could not be read as an image: skipped.";
    card.append(title, why);
    return card;
  }
}
