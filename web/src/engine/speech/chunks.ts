// Audio longer than one 30 s window: windows every (window - overlap) seconds, each transcribed
// alone, texts joined by dropping the words the overlap repeats. Segment times are the window
// offsets (this export decodes without Whisper's timestamp tokens).

export interface Window {
  start: number; // sample index
  end: number;
}

/** [start, end) sample ranges covering `length` samples; the last window ends at `length`. */
export function planWindows(length: number, windowSamples: number, overlapSamples: number): Window[] {
  if (length <= windowSamples) return [{ start: 0, end: length }];
  const step = windowSamples - overlapSamples;
  const windows: Window[] = [];
  for (let start = 0; ; start += step) {
    const end = Math.min(start + windowSamples, length);
    windows.push({ start, end });
    if (end === length) return windows;
  }
}

const norm = (word: string) => word.toLowerCase().replace(/[^\p{L}\p{N}']/gu, "");

/**
 * `next` without its first words when they repeat the last words of `previous` (the overlap heard
 * twice): the longest run of up to `maxWords` words that ends `previous` and starts `next`, compared
 * without case and punctuation.
 */
export function dropOverlap(previous: string, next: string, maxWords = 16): string {
  const a = previous.split(/\s+/).filter(Boolean);
  const b = next.split(/\s+/).filter(Boolean);
  for (let n = Math.min(maxWords, a.length, b.length); n > 0; n--) {
    const tail = a.slice(a.length - n).map(norm);
    const head = b.slice(0, n).map(norm);
    if (tail.every((w, i) => w === head[i])) return b.slice(n).join(" ");
  }
  return b.join(" ");
}
