// The Transcribe tab: drop or pick an audio file (or record), see progress per 30 s window, then the
// text and its segments with times. The panel's data-state ("idle", "working", "done", "error") is for tests.

import type { Transcription } from "../engine/api";
import type { SpeechInput } from "./speech";
import { byId, showError } from "./status";

function clock(seconds: number): string {
  const m = Math.floor(seconds / 60);
  return `${m}:${(seconds - 60 * m).toFixed(1).padStart(4, "0")}`;
}

export class TranscribeTab {
  private readonly panel = byId("panel-transcribe");
  private readonly drop = byId("audio-drop");
  private readonly input = byId<HTMLInputElement>("audio-file");
  private readonly status = byId("transcribe-status");
  private readonly progress = byId<HTMLProgressElement>("transcribe-progress");
  private readonly output = byId<HTMLTextAreaElement>("transcribe-text");
  private readonly segments = byId("transcribe-segments");

  constructor(private readonly speech: SpeechInput) {
    this.input.addEventListener("change", () => {
      const file = this.input.files?.[0];
      if (file) void this.run(file);
    });
    this.drop.addEventListener("dragover", (e) => {
      e.preventDefault();
      this.drop.classList.add("over");
    });
    this.drop.addEventListener("dragleave", () => this.drop.classList.remove("over"));
    this.drop.addEventListener("drop", (e) => {
      e.preventDefault();
      this.drop.classList.remove("over");
      const file = e.dataTransfer?.files[0];
      if (file) void this.run(file);
    });
    speech.attach(byId<HTMLButtonElement>("transcribe-mic"), (text) => {
      this.output.value = text;
    });
    this.panel.dataset["state"] = "idle";
  }

  async run(file: File): Promise<void> {
    this.panel.dataset["state"] = "working";
    this.status.textContent = `Transcribing ${file.name}…`;
    this.progress.hidden = false;
    this.progress.value = 0;
    try {
      const result = await this.speech.transcribe(file, undefined, (p) => {
        this.progress.max = p.windows;
        this.progress.value = p.window;
      });
      this.show(result, file.name);
      this.panel.dataset["state"] = "done";
    } catch (err) {
      this.panel.dataset["state"] = "error";
      this.status.textContent = "";
      showError(err);
    } finally {
      this.progress.hidden = true;
    }
  }

  private show(result: Transcription, name: string): void {
    const rtf = result.computeMs / 1000 / Math.max(result.durationSeconds, 1e-9);
    this.status.textContent = `${name}: ${clock(result.durationSeconds)} of audio in ${(result.computeMs / 1000).toFixed(1)} s`
      + ` (real-time factor ${rtf.toFixed(2)}; segment times are 30 s window offsets)`;
    this.output.value = result.text;
    this.segments.replaceChildren(...result.segments.map((s) => {
      const li = document.createElement("li");
      li.textContent = `[${clock(s.start)} – ${clock(s.end)}] ${s.text || "(no speech)"}`;
      return li;
    }));
  }
}
