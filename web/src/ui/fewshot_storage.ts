// Saved few-shot classifiers in the Storage tab: name, model, examples, method, leave-one-out
// accuracy, size; export one as JSON, import a file, delete one (after asking).

import type { ClassifierSummary, Engine } from "../engine/api";
import { confirmAction } from "./confirm";
import { describeClassifier } from "./fewshot";
import { megabytes } from "./storage";
import { byId, showError } from "./status";

export function mountClassifierStorage(engine: Engine, onChange: () => void): () => Promise<void> {
  const section = document.createElement("div");
  section.className = "stack";
  const title = document.createElement("h3");
  title.textContent = "Few-shot classifiers (taught by example)";
  const table = document.createElement("table");
  table.id = "fewshot-classifiers";
  table.className = "fewshot-table";
  table.setAttribute("aria-label", "Saved few-shot classifiers");
  const importLabel = document.createElement("label");
  importLabel.textContent = "Import a classifier (.json): ";
  const input = document.createElement("input");
  input.type = "file";
  input.id = "fewshot-import";
  input.accept = "application/json,.json";
  importLabel.append(input);
  section.append(title, table, importLabel);
  byId("panel-storage").append(section);

  const refresh = async (): Promise<void> => {
    try {
      table.replaceChildren(...rows(await engine.fewshot.list()));
    } catch (err) {
      showError(err);
    }
  };
  const act = (action: () => Promise<unknown>) => void action().then(() => { onChange(); return refresh(); }).catch(showError);

  function rows(list: ClassifierSummary[]): HTMLTableRowElement[] {
    const head = document.createElement("tr");
    for (const h of ["Classifier", "Model", "Details", "", ""]) head.append(Object.assign(document.createElement("th"), { textContent: h }));
    const body = list.map((c) => {
      const tr = document.createElement("tr");
      tr.dataset["classifier"] = c.id;
      const cell = (text: string) => Object.assign(document.createElement("td"), { textContent: text });
      const exportButton = Object.assign(document.createElement("button"), { textContent: "Export" });
      exportButton.addEventListener("click", () => act(async () => {
        const file = await engine.fewshot.export(c.id);
        const a = Object.assign(document.createElement("a"), {
          href: URL.createObjectURL(new Blob([JSON.stringify(file)], { type: "application/json" })),
          download: `${c.name.replace(/[^\w.-]+/g, "_")}.lumen-classifier.json`,
        });
        a.click();
        setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
      }));
      const deleteButton = Object.assign(document.createElement("button"), { textContent: "Delete" });
      deleteButton.setAttribute("aria-label", `Delete classifier ${c.name}`);
      deleteButton.addEventListener("click", () => void confirmAction(
        `Delete the classifier "${c.name}"? Export it first if you want to keep a copy.`, "Delete")
        .then((yes) => yes && act(() => engine.fewshot.delete(c.id))));
      const buttons = [exportButton, deleteButton].map((b) => {
        const td = document.createElement("td");
        td.append(b);
        return td;
      });
      tr.dataset["bytes"] = String(c.bytes);
      // The size goes with the details: a sixth column would widen the table past a phone screen.
      tr.append(cell(c.name), cell(`${c.model.id} (${c.model.variant})`), cell(`${describeClassifier(c)} · ${megabytes(c.bytes)}`),
        ...buttons);
      return tr;
    });
    if (!body.length) {
      const empty = document.createElement("tr");
      const td = Object.assign(document.createElement("td"), { textContent: "None yet: teach one by example in the Classify tab.", colSpan: 5 });
      empty.append(td);
      body.push(empty);
    }
    return [head, ...body];
  }

  input.addEventListener("change", () => {
    const file = input.files?.[0];
    input.value = "";
    if (file) act(() => engine.fewshot.import(file));
  });
  byId("tab-storage").addEventListener("click", () => void refresh());
  return refresh;
}
