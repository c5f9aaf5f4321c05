// Token ids to streamed text deltas.

/**
 * Turns a growing list of token ids into text deltas. Byte-level BPE can split one character over
 * several tokens, so each step decodes a short window (from the last emitted boundary) and emits
 * only new, complete text; joined, the deltas equal decode(all ids).
 */
export class TextStreamer {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(private readonly decode: (ids: number[]) => string) {}

  /** Adds one token; returns the text it completes ("" while a character is still partial). */
  push(id: number): string {
    this.ids.push(id);
    const before = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const after = this.decode(this.ids.slice(this.prefixOffset));
    if (after.length <= before.length || after.endsWith("\uFFFD")) return "";
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    return after.slice(before.length);
  }

  /** What is still held back at the end (an incomplete character decodes as U+FFFD). */
  flush(): string {
    const before = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const after = this.decode(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return after.length > before.length ? after.slice(before.length) : "";
  }
}
