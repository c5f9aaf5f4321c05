// "Ask the LLM" on the Classify tab (FuDD, Esfandiarpoor & Bach 2024): the chat model writes
// descriptions that tell the top candidates apart, and they re-rank them. Shows the first pass and
// the re-ranked candidates side by side, the descriptions that moved each class (by similarity to
// the image), how each class pair was described, and an explorer that ranks one class's descriptions
// by how well the vision model matches them to the images ("If CLIP Could Talk", EX2).

import type {
  ClassExplanation, Engine, FuddClassification, FuddImage, FuddProgress, LabelScore, RankedDescription,
} from "../engine/api";
import { scoreBars } from "./classify";
import { byId, showError } from "./status";

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = "", text = ""): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/** "+2", "−1" or "=": how many places FuDD moved a label among the candidates. */
function moved(label: string, image: FuddImage): string {
  const before = image.candidates.findIndex((s) => s.label === label);
  const after = image.reranked.findIndex((s) => s.label === label);
  return before === after ? "=" : before > after ? `+${before - after}` : `−${after - before}`;
}

export class FuddPanel {
  private readonly toggle = byId<HTMLInputElement>("fudd-toggle");
  private readonly kInput = byId<HTMLInputElement>("fudd-k");
  private readonly status = byId("fudd-status");
  private urls: string[] = [];

  /** `ensureChat` loads the chat model picked in the Chat tab when none is loaded yet. */
  constructor(private readonly engine: Engine, private readonly ensureChat: () => Promise<void>) {}

  get enabled(): boolean {
    return this.toggle.checked;
  }

  async classify(files: File[], labels: string[], template?: string): Promise<void> {
    this.say("Loading the chat model…", "loading");
    await this.ensureChat();
    this.say("Asking the LLM…", "describing");
    try {
      const result = await this.engine.classify({
        images: files, labels, template, fudd: { k: Number(this.kInput.value) || undefined, onProgress: (p) => this.progress(p) },
      });
      this.say(this.summary(result), "done");
      this.render(files, result, template);
    } catch (err) {
      this.say("", "error");
      throw err;
    }
  }

  private say(text: string, state: string): void {
    this.status.hidden = !text;
    this.status.textContent = text;
    this.status.dataset["state"] = state;
  }

  private progress(p: FuddProgress): void {
    const from = p.source === "cache" ? "from the cache" : p.source === "llm" ? "written by the LLM" : "given";
    this.say(`Writing descriptions: ${p.done} / ${p.total} class pairs (${p.labels.join(" vs ")}: ${from})`, "describing");
  }

  private summary(r: FuddClassification): string {
    const pairs = r.pairs.length;
    const by = r.llm ? `by ${r.llm}` : "given";
    const unusable = r.fallbacks - r.separationFallbacks;
    const fallbacks = r.fallbacks
      ? ` · ${r.fallbacks} of ${pairs} fell back to the template (${unusable} had no usable line, `
        + `${r.separationFallbacks} no feature that separates the two classes)` : "";
    const dropped = r.separationDrops ? ` · ${r.separationDrops} feature pairs dropped: they do not separate their classes` : "";
    const retried = r.jsonRetries ? ` · ${r.jsonRetries} asked again as JSON (no well-formed line)` : "";
    const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
    return `Re-ranked the top ${r.k} with descriptions ${by}: ${count(pairs, "class pair")}, `
      + `${count(r.llmCalls, "answer")} written now, ${r.cacheHits} from the cache${retried}${fallbacks}${dropped}.`;
  }

  private render(files: File[], result: FuddClassification, template?: string): void {
    this.urls.forEach((u) => URL.revokeObjectURL(u));
    this.urls = files.map((f) => URL.createObjectURL(f));
    const cards = result.images.map((image, i) => {
      const card = el("article", "result-card fudd-card");
      const img = el("img");
      img.src = this.urls[i]!;
      img.alt = files[i]!.name;
      const compare = el("div", "fudd-compare");
      compare.append(
        this.column("First pass (template, among all labels)", image.candidates, "first", files[i]!.name),
        this.column(`Re-ranked with descriptions (among the top ${result.k})`, image.reranked, "reranked", files[i]!.name),
      );
      card.append(img, el("h3", "", files[i]!.name), compare, this.why(image));
      return card;
    });
    byId("classify-results").replaceChildren(...cards, this.pairsList(result), this.explorer(files, result, template));
  }

  private column(title: string, scores: LabelScore[], pass: string, name: string): HTMLElement {
    const section = el("section", "fudd-column");
    section.dataset["pass"] = pass;
    section.append(el("h4", "", title), scoreBars(scores, `${title} for ${name}, best first`));
    return section;
  }

  /** Per candidate, its descriptions by similarity to the image: the ones that pulled it up come first. */
  private why(image: FuddImage): HTMLElement {
    const details = el("details", "fudd-why");
    details.append(el("summary", "", "Descriptions that moved each class"));
    for (const { label } of image.reranked) {
      const texts = image.descriptions[label] ?? [];
      const sims = image.similarities[label] ?? [];
      const heading = el("h5", "", `${label} (${moved(label, image)})`);
      const list = el("ol", "fudd-descriptions");
      texts.map((text, j) => ({ text, sim: sims[j] ?? 0 })).sort((a, b) => b.sim - a.sim).forEach(({ text, sim }) => {
        const item = el("li", "", text);
        item.append(el("span", "fudd-sim", ` cos ${sim.toFixed(3)}`));
        list.append(item);
      });
      details.append(heading, list);
    }
    return details;
  }

  /** How each class pair was described: source, fallback, and the parser's reasons for rejected lines. */
  private pairsList(result: FuddClassification): HTMLElement {
    const details = el("details", "fudd-pairs result-card");
    details.append(el("summary", "", `Class pairs (${result.pairs.length}; ${result.fallbacks} fell back to the template)`));
    const list = el("ul");
    for (const p of result.pairs) {
      const kept = p.checks ? ` · ${p.checks.filter((c) => c.kept).length} of ${p.checks.length} feature pairs separate them` : "";
      const retried = p.retried ? " · asked again as JSON" : "";
      const item = el("li", "", `${p.labels.join(" vs ")}: ${p.source}${retried}${kept}${p.fallback ? " · fell back to the template" : ""}`);
      item.dataset["fallback"] = String(p.fallback);
      if (p.rejected?.length) item.title = p.rejected.map(([line, why]) => `${line} — ${why}`).join("\n");
      list.append(item);
    }
    details.append(list);
    return details;
  }

  /** "Which descriptions does the vision model prefer?" for one candidate over all the images. */
  private explorer(files: File[], result: FuddClassification, template?: string): HTMLElement {
    const section = el("section", "fudd-explorer result-card");
    section.id = "fudd-explorer";
    const labels = [...new Set(result.images.flatMap((im) => im.reranked.map((s) => s.label)))];
    const select = el("select");
    select.id = "fudd-explore-label";
    select.setAttribute("aria-label", "Class to explore");
    select.append(...labels.map((l) => new Option(l, l)));
    const button = el("button", "", "Rank its descriptions");
    button.id = "fudd-explore-run";
    const note = el("p", "fudd-status");
    const out = el("ol", "fudd-explained");
    out.id = "fudd-explained";
    button.addEventListener("click", () => void this.explain(select.value, labels, files, template, button, note, out));
    const row = el("div", "row wrap");
    row.append(select, button);
    section.append(el("h4", "", "Which descriptions does the vision model prefer?"), row, note, out);
    return section;
  }

  private async explain(label: string, labels: string[], files: File[], template: string | undefined,
    button: HTMLButtonElement, note: HTMLElement, out: HTMLElement): Promise<void> {
    button.disabled = true;
    try {
      const result = await this.engine.explainClass({
        label, images: files, against: labels.filter((l) => l !== label), template,
        onProgress: (p) => (note.textContent = `Writing descriptions: ${p.done} / ${p.total} class pairs`),
      });
      note.textContent = `${result.descriptions.length} descriptions of ${label} by mean cosine over ${files.length} `
        + `images (${result.llmCalls} class pairs written now, ${result.cacheHits} from the cache).`;
      out.replaceChildren(...this.explained(result));
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
    }
  }

  private explained(result: ClassExplanation): HTMLElement[] {
    const signed = (x: number) => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(3)}`;
    const line = (d: RankedDescription, text: string, kind: string) => {
      const item = el("li", `fudd-explained-${kind}${d.kept ? "" : " fudd-dropped"}`, text);
      item.dataset["kept"] = String(d.kept);
      const parts = [`mean cos ${d.cosine.toFixed(3)}`];
      if (d.textSeparation !== null) parts.push(`separates in text ${signed(d.textSeparation)}`);
      if (d.imageSeparation !== null) parts.push(`on these images ${signed(d.imageSeparation)}`);
      if (!d.kept) parts.push("dropped: does not separate the pair");
      item.append(el("span", "fudd-sim", ` ${parts.join(" · ")}`));
      return item;
    };
    if (result.descriptions.length === 0) {
      return [el("li", "", `The LLM wrote nothing usable for ${result.label}: only the template remains.`)];
    }
    return [
      ...result.descriptions.map((d) => line(d, `${d.text}${d.against ? ` (vs ${d.against})` : ""}`, "description")),
      line(result.template, `template: ${result.template.text}`, "template"),
    ];
  }
}
