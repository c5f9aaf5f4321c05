// "Teach by example" in the Classify tab (docs/fewshot.md): mark a result as "this is X", or drop
// images onto a label, and the loaded model's classifier adapts to them (engine.fewshot.fit, in the
// worker). Shows leave-one-out accuracy as examples are added, and zero-shot next to adapted scores
// on each result. The classifier is saved per vision model and restored when that model loads.

import "./fewshot.css";
import type { ClassifierSummary, Engine, FitResult, VisionModelInfo } from "../engine/api";
import { scoreBars } from "./classify";
import { accuracyCurve, type CurvePoint } from "./fewshot_curve";
import { byId, showError } from "./status";

interface Example {
  label: string;
  embedding: Float32Array;
}

const METHOD_NAMES: Record<string, string> = { probe: "linear probe", tip: "Tip-style cache" };
const curveKey = (id: string) => `lumen-fewshot-curve:${id}`;

function element<K extends keyof HTMLElementTagNameMap>(tag: K, text = "", className = ""): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  el.textContent = text;
  if (className) el.className = className;
  return el;
}

export function describeClassifier(c: ClassifierSummary): string {
  const params = Object.entries(c.params).map(([k, v]) => `${k} ${v}`).join(", ");
  return `${c.examples} examples · ${METHOD_NAMES[c.method] ?? c.method} (${params}) · leave-one-out accuracy ` +
    `${(c.looAccuracy * 100).toFixed(0)}%`;
}

export class FewShotPanel {
  private model: VisionModelInfo | null = null;
  private active: ClassifierSummary | null = null;
  private examples: Example[] = [];
  private curve: CurvePoint[] = [];
  private readonly embedded = new WeakMap<File, Float32Array>();
  private shownFiles: File[] = [];
  private busy: Promise<void> = Promise.resolve();

  constructor(private readonly engine: Engine) {}

  /** The classifier the page adapts now (Search's "more like these" uses it too). */
  get classifier(): ClassifierSummary | null {
    return this.active;
  }

  /** Adds the section under the Classify results. */
  mount(): void {
    const section = element("section", "", "fewshot");
    section.id = "fewshot";
    section.setAttribute("aria-labelledby", "fewshot-title");
    const title = element("h2", "Teach by example");
    title.id = "fewshot-title";
    const status = element("p", "", "index-status");
    status.id = "fewshot-status";
    status.setAttribute("role", "status");
    const chips = element("ul", "", "fewshot-labels");
    chips.id = "fewshot-labels";
    chips.setAttribute("aria-label", "Labels: drop images on one to add them as its examples");
    const method = element("select");
    method.id = "fewshot-method";
    method.setAttribute("aria-label", "Few-shot method");
    method.append(new Option("auto (leave-one-out picks)", "auto"), new Option("linear probe", "probe"),
      new Option("Tip-style cache", "tip"));
    method.addEventListener("change", () => void this.queue(() => this.refit()));
    const reset = element("button", "Start over");
    reset.id = "fewshot-reset";
    reset.addEventListener("click", () => void this.queue(() => this.startOver()));
    const controls = element("div", "", "row wrap");
    controls.append(method, reset);
    const curve = element("div", "", "fewshot-curve");
    curve.id = "fewshot-curve";
    section.append(title, status, chips, controls, curve);
    byId("panel-classify").append(section);
    byId<HTMLTextAreaElement>("labels").addEventListener("input", () => this.renderChips());
    this.render();
  }

  /** A model loaded: restore its newest saved classifier (examples, labels, curve). */
  async modelReady(model: VisionModelInfo): Promise<void> {
    this.model = model;
    this.active = null;
    this.examples = [];
    this.curve = [];
    try {
      const saved = (await this.engine.fewshot.list(model.id)).find((c) => c.model.revision === model.revision);
      if (saved) {
        const file = await this.engine.fewshot.export(saved.id);
        this.active = saved;
        this.examples = file.examples.map((e) => ({ label: e.label, embedding: Float32Array.from(e.embedding) }));
        this.curve = JSON.parse(localStorage.getItem(curveKey(saved.id)) ?? "[]") as CurvePoint[];
        byId<HTMLTextAreaElement>("labels").value = file.labels.join("\n");
      }
    } catch (err) {
      showError(err);
    }
    this.render();
  }

  modelGone(): void {
    this.model = null;
    this.render();
  }

  /** Called after Classify rendered its cards (zero-shot): adds "this is X" and the adapted scores. */
  showResults(files: File[]): void {
    this.shownFiles = files;
    // The first cards are the classified files, in order; cards of unreadable files follow them.
    const cards = Array.from(document.querySelectorAll<HTMLElement>("#classify-results .result-card"));
    cards.slice(0, files.length).forEach((card, i) => this.decorate(card, files[i]!));
    void this.queue(() => this.compare());
  }

  /** Adds examples (files are embedded once) and refits. */
  addExamples(items: ({ label: string } & ({ file: File } | { embedding: Float32Array }))[]): Promise<void> {
    return this.queue(async () => {
      const files = items.flatMap((i) => ("file" in i && !this.embedded.has(i.file) ? [i.file] : []));
      if (files.length) (await this.engine.embedImages(files)).forEach((e, k) => this.embedded.set(files[k]!, e));
      for (const item of items) {
        this.examples.push({ label: item.label, embedding: "file" in item ? this.embedded.get(item.file)! : item.embedding });
      }
      await this.refit();
      await this.compare();
    });
  }

  /** Runs UI actions one at a time (a fit must not race the next example). */
  private queue(action: () => Promise<void>): Promise<void> {
    this.busy = this.busy.then(action).catch(showError);
    return this.busy;
  }

  private labels(): string[] {
    return [...new Set(byId<HTMLTextAreaElement>("labels").value.split("\n").map((l) => l.trim()).filter(Boolean))];
  }

  private async refit(): Promise<void> {
    const labels = this.labels();
    const examples = this.examples.filter((e) => labels.includes(e.label));
    if (!this.model || labels.length < 2 || examples.length === 0) {
      this.render();
      return;
    }
    const method = byId<HTMLSelectElement>("fewshot-method").value as "auto" | "probe" | "tip";
    const fit: FitResult = await this.engine.fewshot.fit({ labels, method, replace: this.active?.id,
      examples: examples.map((e) => ({ label: e.label, embedding: e.embedding })) });
    this.active = fit;
    this.curve.push({ examples: fit.examples, accuracy: fit.looAccuracy, method: fit.method });
    localStorage.setItem(curveKey(fit.id), JSON.stringify(this.curve));
    this.render();
  }

  private async startOver(): Promise<void> {
    if (this.active) {
      await this.engine.fewshot.delete(this.active.id);
      localStorage.removeItem(curveKey(this.active.id));
    }
    this.active = null;
    this.examples = [];
    this.curve = [];
    document.querySelectorAll(".fewshot-adapted").forEach((el) => el.remove());
    this.render();
  }

  /** Adapted next to zero-shot on each shown card, when the classifier knows the current labels. */
  private async compare(): Promise<void> {
    const labels = this.labels();
    const cards = Array.from(document.querySelectorAll<HTMLElement>("#classify-results .result-card"));
    cards.forEach((c) => c.querySelector(".fewshot-adapted")?.remove());
    if (!this.active || !cards.length || labels.join("\n") !== this.active.labels.join("\n")) return;
    const missing = this.shownFiles.filter((f) => !this.embedded.has(f));
    if (missing.length) (await this.engine.embedImages(missing)).forEach((e, k) => this.embedded.set(missing[k]!, e));
    const { adapted } = await this.engine.fewshot.compare({ classifier: this.active.id,
      embeddings: this.shownFiles.map((f) => this.embedded.get(f)!) });
    cards.forEach((card, i) => {
      const block = element("div", "", "fewshot-adapted");
      block.append(element("h4", `Adapted (${this.active!.examples} examples)`),
        scoreBars(adapted[i]!, `Adapted labels for ${this.shownFiles[i]!.name}, best first`));
      card.classList.add("fewshot-compared");
      card.append(block);
    });
  }

  private decorate(card: HTMLElement, file: File): void {
    const bars = card.querySelector("ol.bars");
    if (bars && !card.querySelector(".fewshot-zero-shot")) bars.before(element("h4", "Zero-shot", "fewshot-zero-shot"));
    const top = bars?.querySelector<HTMLElement>("li.bar")?.dataset["label"];
    const row = element("div", "", "row wrap fewshot-mark");
    const select = element("select", "", "fewshot-truth");
    select.setAttribute("aria-label", `What ${file.name} shows`);
    select.append(...this.labels().map((l) => new Option(l, l)));
    if (top) select.value = top;
    const add = element("button", "Add as example", "fewshot-add");
    add.addEventListener("click", () => void this.addExamples([{ file, label: select.value }]));
    row.append(element("span", "This is"), select, add);
    card.append(row);
  }

  private renderChips(): void {
    const chips = this.labels().map((label) => {
      const li = element("li", "", "fewshot-label");
      li.dataset["label"] = label;
      const count = this.examples.filter((e) => e.label === label).length;
      li.append(element("span", label), element("span", String(count), "fewshot-count"));
      li.addEventListener("dragover", (e) => {
        e.preventDefault();
        li.classList.add("over");
      });
      li.addEventListener("dragleave", () => li.classList.remove("over"));
      li.addEventListener("drop", (e) => {
        e.preventDefault();
        li.classList.remove("over");
        const files = Array.from(e.dataTransfer?.files ?? []).filter((f) => f.type.startsWith("image/"));
        if (files.length) void this.addExamples(files.map((file) => ({ file, label })));
      });
      return li;
    });
    byId("fewshot-labels").replaceChildren(...chips);
  }

  private render(): void {
    const status = byId("fewshot-status");
    status.textContent = !this.model ? "Load a model to teach it by example."
      : this.active ? describeClassifier(this.active)
      : "No examples yet: mark a result as \"this is …\", or drop images on a label below.";
    document.body.dataset["fewshotExamples"] = String(this.active?.examples ?? 0);
    this.renderChips();
    byId("fewshot-curve").replaceChildren(accuracyCurve(this.curve, this.labels().length));
  }
}
