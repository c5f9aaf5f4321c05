// "More like these" in the Search tab: rank the indexed images by the adapted classifier's
// probability for one of its classes; tick results and add them as that class's examples (their
// indexed embeddings: nothing is embedded again), which refits and ranks again.

import type { Engine } from "../engine/api";
import type { FewShotPanel } from "./fewshot";
import type { IndexedImage } from "./storage";
import { byId, showError } from "./status";

const SHOWN = 24;

export interface SearchHooks {
  entries: () => IndexedImage[];
  show: (ranked: { e: IndexedImage; score: number }[]) => void;
}

export function attachMoreLikeThese(engine: Engine, panel: FewShotPanel, hooks: SearchHooks): void {
  const row = document.createElement("div");
  row.className = "row wrap fewshot-more";
  const label = document.createElement("label");
  label.htmlFor = "more-like-class";
  label.textContent = "More like";
  const select = document.createElement("select");
  select.id = "more-like-class";
  const rank = document.createElement("button");
  rank.id = "more-like-run";
  rank.textContent = "Rank by the adapted class";
  const add = document.createElement("button");
  add.id = "more-like-add";
  add.textContent = "More like these (add ticked as examples)";
  const note = document.createElement("small");
  row.append(label, select, rank, add, note);
  byId("search-results").before(row);

  const refreshClasses = () => {
    const labels = panel.classifier?.labels ?? [];
    const keep = select.value;
    select.replaceChildren(...labels.map((l) => new Option(l, l)));
    if (labels.includes(keep)) select.value = keep;
    for (const el of [select, rank, add]) el.disabled = labels.length === 0;
    note.textContent = labels.length ? "" : "Teach a classifier by example in the Classify tab first.";
  };
  byId("tab-search").addEventListener("click", refreshClasses);
  refreshClasses();

  const rankNow = async () => {
    const classifier = panel.classifier;
    const entries = hooks.entries();
    if (!classifier || !entries.length) throw new Error("Index a folder and teach a classifier first.");
    const { adapted } = await engine.fewshot.compare({ classifier: classifier.id, embeddings: entries.map((e) => e.embedding) });
    const score = (i: number) => adapted[i]!.find((s) => s.label === select.value)!.score;
    hooks.show(entries.map((e, i) => ({ e, score: score(i) })).sort((a, b) => b.score - a.score).slice(0, SHOWN));
    for (const li of document.querySelectorAll<HTMLElement>("#search-results li.thumb")) {
      const tick = document.createElement("input");
      tick.type = "checkbox";
      tick.className = "fewshot-pick";
      tick.setAttribute("aria-label", `Use ${li.dataset["path"]} as an example of ${select.value}`);
      li.prepend(tick);
    }
  };
  rank.addEventListener("click", () => void rankNow().catch(showError));
  add.addEventListener("click", () => void (async () => {
    const ticked = new Set(Array.from(document.querySelectorAll<HTMLInputElement>("#search-results .fewshot-pick:checked"))
      .map((t) => t.closest<HTMLElement>("li.thumb")!.dataset["path"]));
    const picked = hooks.entries().filter((e) => ticked.has(e.path));
    if (!picked.length) throw new Error("Tick some results first.");
    await panel.addExamples(picked.map((e) => ({ label: select.value, embedding: e.embedding })));
    await rankNow();
  })().catch(showError));
}
