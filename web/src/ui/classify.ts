// Classify tab: drop or pick images, labels one per line (or a preset), ranked bars per image.

import type { Engine, LabelScore } from "../engine/api";
import type { FewShotPanel } from "./fewshot";
import type { FuddPanel } from "./fudd";
import { byId, clearErrors, showError } from "./status";

const PRESETS: Record<string, string[]> = {
  Animals: ["cat", "dog", "bird", "horse", "fish", "rabbit"],
  Vehicles: ["car", "bicycle", "bus", "airplane", "boat", "train"],
  Scenes: ["beach", "forest", "city street", "mountain", "kitchen", "office"],
  Food: ["pizza", "salad", "sushi", "cake", "soup", "burger"],
};

/** Ranked score bars, best first (data-label/data-score on each row for tests). */
export function scoreBars(scores: LabelScore[], ariaLabel: string): HTMLOListElement {
  const bars = document.createElement("ol");
  bars.className = "bars";
  bars.setAttribute("aria-label", ariaLabel);
  for (const s of scores) {
    const li = document.createElement("li");
    li.className = "bar";
    li.dataset["label"] = s.label;
    li.dataset["score"] = String(s.score);
    const name = document.createElement("span");
    name.className = "bar-label";
    name.textContent = s.label;
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
  return bars;
}

export class ClassifyTab {
  private files: File[] = [];
  private ready = false;
  private urls: string[] = [];

  /** `fudd`: the "Ask the LLM" panel (ui/fudd.ts), which takes over the run when its toggle is on. */
  /** `fewshot`: "Teach by example" (ui/fewshot.ts): "this is X" on each result, adapted scores beside them. */
  constructor(private readonly engine: Engine, private readonly fudd?: FuddPanel, private readonly fewshot?: FewShotPanel) {
    const preset = byId<HTMLSelectElement>("label-preset");
    preset.append(new Option("Custom…", ""), ...Object.keys(PRESETS).map((name) => new Option(name, name)));
    preset.addEventListener("change", () => {
      const labels = PRESETS[preset.value];
      if (labels) byId<HTMLTextAreaElement>("labels").value = labels.join("\n");
    });
    preset.value = "Animals";
    byId<HTMLTextAreaElement>("labels").value = PRESETS["Animals"]!.join("\n");

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

  private labels(): string[] {
    return byId<HTMLTextAreaElement>("labels").value.split("\n").map((l) => l.trim()).filter(Boolean);
  }

  private async run(): Promise<void> {
    const labels = this.labels();
    if (labels.length === 0) {
      showError(new Error("Enter at least one label, one per line."));
      return;
    }
    clearErrors();
    const button = byId<HTMLButtonElement>("classify-run");
    button.disabled = true;
    button.textContent = "Classifying…";
    const results = byId("classify-results");
    results.setAttribute("aria-busy", "true");
    try {
      const template = byId<HTMLInputElement>("template").value || undefined;
      if (this.fudd?.enabled) {
        await this.fudd.classify(this.files, labels, template);
        return;
      }
      const ranked = await this.engine.classify({ images: this.files, labels, template });
      this.render(ranked);
      this.fewshot?.showResults(this.files);
    } catch (err) {
      showError(err);
    } finally {
      button.textContent = "Classify";
      results.removeAttribute("aria-busy");
      this.updateButton();
    }
  }

  private render(ranked: LabelScore[][]): void {
    this.urls.forEach((u) => URL.revokeObjectURL(u));
    this.urls = this.files.map((f) => URL.createObjectURL(f));
    const cards = ranked.map((scores, i) => {
      const card = document.createElement("article");
      card.className = "result-card";
      const img = document.createElement("img");
      img.src = this.urls[i]!;
      img.alt = this.files[i]!.name;
      const title = document.createElement("h3");
      title.textContent = this.files[i]!.name;
      card.append(img, title, scoreBars(scores, `Labels for ${this.files[i]!.name}, best first`));
      return card;
    });
    byId("classify-results").replaceChildren(...cards);
  }
}
