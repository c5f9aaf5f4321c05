// Speech input for the whole page: one Whisper model (the first speech model of the manifest, loaded
// on first use) and microphone buttons that record while pressed-on and put the transcript where it
// belongs (Chat message, Search query, Classify labels). Button data-state ("idle", "loading",
// "recording", "transcribing", "error") is for tests.

import type { Engine, LoadOptions, ModelEntry, TranscribeProgress, Transcription } from "../engine/api";
import { showDownload, showError } from "./status";

type MicState = "idle" | "loading" | "recording" | "transcribing" | "error";

/** "Dog, cat, horse and bird." -> ["Dog", "cat", "horse", "bird"]: a spoken list as labels. */
export function spokenLabels(text: string): string[] {
  return text
    .replace(/[.!?]+$/u, "")
    .split(/\s*(?:,|;|\band\b|\bor\b)\s*/iu)
    .map((s) => s.trim())
    .filter(Boolean);
}

export class SpeechInput {
  private modelId: string | null = null;
  private loading: Promise<void> | null = null;

  constructor(private readonly engine: Engine, private readonly loadOptions: () => LoadOptions) {}

  /** The speech models the manifest offers; the trained one first. */
  setModels(models: ModelEntry[]): void {
    const speech = models.filter((m) => m.task === "automatic-speech-recognition");
    speech.sort((a, b) => Number(b.trained) - Number(a.trained));
    this.modelId = speech[0]?.id ?? null;
    document.body.dataset["speech"] = this.modelId ?? "";
  }

  get available(): boolean {
    return this.modelId !== null;
  }

  async ensureLoaded(): Promise<void> {
    if (!this.modelId) throw new Error("No speech model is exported. Run: python -m exporter whisper --model whisper-tiny.en");
    if (this.engine.speech?.id === this.modelId) return;
    this.loading ??= this.engine.loadSpeech(this.modelId, { ...this.loadOptions(), onProgress: showDownload })
      .then(() => undefined)
      .finally(() => {
        showDownload(null);
        this.loading = null;
      });
    await this.loading;
  }

  async transcribe(audio: Blob | MediaStream, signal?: AbortSignal,
    onProgress?: (p: TranscribeProgress) => void): Promise<Transcription> {
    await this.ensureLoaded();
    return this.engine.transcribe({ audio, signal, seconds: 60, onProgress });
  }

  /** A microphone button: click starts recording, a second click stops it; `onText` gets the transcript. */
  attach(button: HTMLButtonElement, onText: (text: string) => void): void {
    let stopper: AbortController | null = null;
    const set = (state: MicState, label: string | null) => {
      button.dataset["state"] = state;
      button.replaceChildren(label ?? micIcon());
      button.setAttribute("aria-pressed", String(state === "recording"));
    };
    set("idle", null);
    button.title = "Speak (click again to stop)";
    button.hidden = !this.available;
    button.addEventListener("click", async () => {
      if (stopper) {
        stopper.abort();
        return;
      }
      stopper = new AbortController();
      let stream: MediaStream | null = null;
      try {
        set("loading", "…");
        await this.ensureLoaded();
        stream = await navigator.mediaDevices.getUserMedia({ audio: true });
        set("recording", "■ Stop");
        const result = await this.transcribe(stream, stopper.signal, () => set("transcribing", "…"));
        set("idle", null);
        if (result.text) onText(result.text);
      } catch (err) {
        set("error", null);
        showError(err);
      } finally {
        stream?.getTracks().forEach((t) => t.stop());
        stopper = null;
      }
    });
  }
}

/** A microphone drawn as SVG: an emoji needs an emoji font, which many Linux systems lack. */
function micIcon(): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  for (const [name, value] of [["viewBox", "0 0 24 24"], ["width", "18"], ["height", "18"], ["fill", "none"],
    ["stroke", "currentColor"], ["stroke-width", "2"], ["stroke-linecap", "round"], ["aria-hidden", "true"]]) {
    svg.setAttribute(name!, value!);
  }
  for (const d of ["M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z", "M5 11a7 7 0 0 0 14 0", "M12 18v3"]) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}
