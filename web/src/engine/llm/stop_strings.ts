// OpenAI's `stop`: generation ends where the text first contains one of the stop strings, and the
// reply ends just before it. Streamed text is held back while it could still be the start of a stop
// string, so no delta ever shows part of one; joined, the deltas equal the final text.

export const MAX_STOP_STRINGS = 4; // as OpenAI

export class StopStrings {
  private pending = "";
  stopped = false;

  constructor(private readonly stops: string[]) {}

  /** Adds decoded text; returns what can be shown now (never part of a stop string). */
  push(text: string): string {
    if (this.stopped) return "";
    this.pending += text;
    let cut = -1;
    for (const stop of this.stops) {
      const at = this.pending.indexOf(stop);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.stopped = true;
      const shown = this.pending.slice(0, cut);
      this.pending = "";
      return shown;
    }
    const keep = this.heldBack();
    const shown = this.pending.slice(0, this.pending.length - keep);
    this.pending = this.pending.slice(this.pending.length - keep);
    return shown;
  }

  /** The held-back text, once generation ended without a stop string. */
  flush(): string {
    const rest = this.stopped ? "" : this.pending;
    this.pending = "";
    return rest;
  }

  /** Length of the longest end of `pending` that begins some stop string. */
  private heldBack(): number {
    let longest = 0;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, this.pending.length); n > longest; n--) {
        if (this.pending.endsWith(stop.slice(0, n))) {
          longest = n;
          break;
        }
      }
    }
    return longest;
  }
}
