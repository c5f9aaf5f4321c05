// FuDD (Esfandiarpoor & Bach, ICLR 2024) in the engine: the differential-description prompt and its
// strict parser, driven by contract/fudd_prompt.json (the same data reference/fudd_prompt.py reads),
// and the re-ranking over embeddings. Pure functions: the worker supplies the LLM and text embedder.
// Every rule mirrors reference/fudd_prompt.py and reference/fudd.py; tests/test_browser_fudd.py
// checks both give the same pairs, reasons, order and scores.

import type { VisionInfo } from "../manifest.gen";
import { applyTemplate, dot, type LabelScore, l2Normalize, scoreLabels } from "../vision/scoring";

export interface ChatTurn {
  role: string;
  content: string;
}

/** contract/fudd_prompt.json */
export interface FuddPromptData {
  version: number;
  messages: ChatTurn[];
  generation: { max_new_tokens: number; temperature: number };
  pairs_per_class_pair: number;
  parse: {
    separator: string;
    line_marker: string;
    trim_chars: string;
    drop_leading_words: string[];
    min_chars: number;
    max_chars: number;
    max_words: number;
    needs_letter: string;
    format_echoes: string[];
  };
  description: string;
  attr_type: string;
  /** FuDD under constrained decoding: the answer is JSON following schema() (see the file's `about`). */
  structured: { messages: ChatTurn[]; min_chars: number; max_chars: number; max_new_tokens: number };
  /** The separation check of LLM-written feature pairs (separation.ts). */
  separation: { min_text: number };
}

export interface Parsed {
  /** (feature of a, feature of b), at most n */
  pairs: Array<[string, string]>;
  /** (line, why) */
  rejected: Array<[string, string]>;
}

/** Why a structured answer is unusable when max_new_tokens cut its JSON (reference/fudd_prompt.py FORMAT_CUT). */
export const FORMAT_CUT = "not valid JSON: cut by max_new_tokens";

/**
 * Unusable because of the format alone: nothing in the answer had the asked-for shape (no rejection
 * is about content). reference/fudd_prompt.py Parsed.format_failure.
 */
export function formatFailure(parsed: Parsed): boolean {
  return parsed.pairs.length === 0 && parsed.rejected.every(([, why]) => why === FORMAT_CUT || why.startsWith("not one '"));
}

const PLACEHOLDER = /\{(a|b|n|label|feature)\}/g;
// The line breaks Python's str.splitlines() knows.
const LINE_BREAK = /\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]/u;

/** One pass over the placeholders, so a label containing "{b}" is not substituted again. */
export function fill(text: string, values: Record<string, string>): string {
  return text.replace(PLACEHOLDER, (whole, name: string) => values[name] ?? whole);
}

const codePoints = (s: string): number => [...s].length; // Python's len()
const words = (s: string): string[] => s.split(/\s+/u).filter((w) => w.length > 0);

function stripChars(s: string, chars: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && chars.includes(s[start]!)) start++;
  while (end > start && chars.includes(s[end - 1]!)) end--;
  return s.slice(start, end);
}

export class FuddPrompt {
  private readonly lineMarker: RegExp;
  private readonly needsLetter: RegExp;
  private readonly leadingWords: string[];
  private readonly exampleSides: Set<string>;

  constructor(readonly data: FuddPromptData) {
    this.lineMarker = new RegExp(data.parse.line_marker, "u");
    this.needsLetter = new RegExp(data.parse.needs_letter, "u");
    this.leadingWords = [...data.parse.drop_leading_words].sort((x, y) => y.length - x.length);
    // Lines of the worked example: a model that copies them said nothing.
    this.exampleSides = new Set();
    for (const turn of data.messages.filter((m) => m.role === "assistant")) {
      for (const line of turn.content.split(LINE_BREAK)) {
        const split = this.split(line);
        if (split) split.forEach((side) => this.exampleSides.add(side.toLowerCase()));
      }
    }
  }

  get version(): number {
    return this.data.version;
  }

  get maxNewTokens(): number {
    return this.data.generation.max_new_tokens;
  }

  messages(a: string, b: string, n: number): ChatTurn[] {
    const values = { a, b, n: String(n) };
    return this.data.messages.map((m) => ({ role: m.role, content: fill(m.content, values) }));
  }

  structuredMessages(a: string, b: string, n: number): ChatTurn[] {
    const values = { a, b, n: String(n) };
    return this.data.structured.messages.map((m) => ({ role: m.role, content: fill(m.content, values) }));
  }

  get structuredMaxNewTokens(): number {
    return this.data.structured.max_new_tokens;
  }

  /** JSON Schema text of the answer: exactly n objects {a: feature, b: feature}; same text as reference/fudd_prompt.py. */
  schema(a: string, b: string, n: number): string {
    const { min_chars: minLength, max_chars: maxLength } = this.data.structured;
    const feature = { type: "string", minLength, maxLength };
    const item = { type: "object", properties: { [a]: feature, [b]: feature }, required: [a, b], additionalProperties: false };
    return JSON.stringify({ type: "array", items: item, minItems: n, maxItems: n });
  }

  /** A schema-constrained answer: its pairs judged by the same rules as lines "fa | fb". */
  parseStructured(text: string, a: string, b: string, n: number): Parsed {
    let items: Array<Record<string, string>>;
    try {
      items = JSON.parse(text) as Array<Record<string, string>>;
    } catch {
      return { pairs: [], rejected: [[text, FORMAT_CUT]] };
    }
    const sep = this.data.parse.separator;
    return this.parse(items.map((item) => `${item[a]} ${sep} ${item[b]}`).join("\n"), a, b, n);
  }

  /** The text embedded for a feature: the model's template around "<label>, with <feature>". */
  description(template: string, label: string, feature: string): string {
    return applyTemplate(template, fill(this.data.description, { label, feature }));
  }

  parse(text: string, a: string, b: string, n: number): Parsed {
    const rules = this.data.parse;
    const pairs: Array<[string, string]> = [];
    const rejected: Array<[string, string]> = [];
    const seen = new Set<string>();
    const echoes = new Set(rules.format_echoes.map((e) => fill(e, { a, b }).toLowerCase()));
    for (const raw of text.split(LINE_BREAK)) {
      const line = raw.trim();
      if (!line) continue;
      const split = this.split(line);
      if (!split) {
        rejected.push([line, `not one '${rules.separator}' between two features`]);
        continue;
      }
      const fa = this.stripLabel(split[0], a);
      const fb = this.stripLabel(split[1], b);
      const [ka, kb] = [fa.toLowerCase(), fb.toLowerCase()];
      const key = JSON.stringify([ka, kb]);
      let why = this.sideProblem(fa, a, b) ?? this.sideProblem(fb, a, b);
      if (why === null && (echoes.has(ka) || echoes.has(kb))) why = "repeats the format instead of describing";
      if (why === null && ka === kb) why = "both sides say the same";
      if (why === null && withoutNames(fa, a, b) === withoutNames(fb, a, b)) {
        why = "the sides differ only in the class names";
      }
      if (why === null && (this.exampleSides.has(ka) || this.exampleSides.has(kb))) why = "copied from the example";
      if (why === null && seen.has(key)) why = "repeated";
      if (why !== null) {
        rejected.push([line, why]);
        continue;
      }
      seen.add(key);
      if (pairs.length < n) pairs.push([fa, fb]);
    }
    return { pairs, rejected };
  }

  private split(line: string): [string, string] | null {
    const parts = line.trim().replace(this.lineMarker, "").split(this.data.parse.separator);
    return parts.length === 2 ? [this.trim(parts[0]!), this.trim(parts[1]!)] : null;
  }

  private trim(side: string): string {
    const chars = this.data.parse.trim_chars;
    const s = stripChars(side, chars);
    for (const word of this.leadingWords) { // "with red fur" -> "red fur": the description adds "with"
      if (s.toLowerCase().startsWith(word.toLowerCase() + " ")) return stripChars(s.slice(word.length + 1), chars);
    }
    return s;
  }

  /** "cat: pointy ears" -> "pointy ears" (models often name the class first). */
  private stripLabel(side: string, label: string): string {
    return side.toLowerCase().startsWith(label.toLowerCase() + ":") ? this.trim(side.slice(label.length + 1)) : side;
  }

  private sideProblem(side: string, a: string, b: string): string | null {
    const { min_chars: min, max_chars: max, max_words: maxWords } = this.data.parse;
    const length = codePoints(side);
    if (length < min || length > max) return `a feature must have ${min}-${max} characters`;
    if (words(side).length > maxWords) return `a feature must have at most ${maxWords} words`;
    if (!this.needsLetter.test(side)) return "a feature needs a letter";
    const lower = side.toLowerCase();
    if (lower === a.toLowerCase() || lower === b.toLowerCase()) return "a class name is not a feature";
    return null;
  }
}

/** "labrador with a black nose" -> "with a black nose"; "owls" -> "s". */
function withoutNames(side: string, a: string, b: string): string {
  let text = side.toLowerCase();
  for (const name of [a.toLowerCase(), b.toLowerCase()].sort((x, y) => y.length - x.length)) {
    text = text.split(name).join(" ");
  }
  return words(text).join(" ");
}

// ---------------------------------------------------------------- re-ranking

export interface FuddRanking {
  /** the K candidates of the first pass, best first */
  candidates: LabelScore[];
  /** the K candidates re-scored with their descriptions, best first */
  reranked: LabelScore[];
  /** candidate -> the descriptions its embedding averages */
  descriptions: Record<string, string[]>;
  /** candidate -> each description's cosine with the image (same order): which ones pulled it up */
  similarities: Record<string, number[]>;
}

/** (a, b) -> [descriptions of a, descriptions of b] */
export type PairDescriber = (a: string, b: string) => Promise<[string[], string[]]>;
export type TextEmbedder = (texts: string[]) => Promise<Float32Array[]>;

const unique = (items: string[]): string[] => [...new Set(items)];

/** Each candidate's descriptions: the union over its pairs with the other candidates (candidate order). */
export async function classDescriptions(candidates: string[], describe: PairDescriber,
  template: string): Promise<Record<string, string[]>> {
  const found: Record<string, string[]> = Object.fromEntries(candidates.map((c) => [c, [] as string[]]));
  for (let i = 0; i < candidates.length; i++) {
    for (let j = i + 1; j < candidates.length; j++) {
      const [a, b] = [candidates[i]!, candidates[j]!];
      const [forA, forB] = await describe(a, b);
      found[a]!.push(...forA);
      found[b]!.push(...forB);
    }
  }
  // A lone candidate (K = 1) has no pairs and keeps its template prompt.
  return Object.fromEntries(candidates.map((c) => {
    const texts = unique(found[c]!);
    return [c, texts.length ? texts : [applyTemplate(template, c)]];
  }));
}

/** [n][D] -> [D]: the unit-length mean of the unit-length rows. */
export function classEmbedding(rows: Float32Array[]): Float32Array {
  const mean = new Float64Array(rows[0]!.length);
  for (const row of rows) {
    const unit = l2Normalize(row);
    for (let d = 0; d < mean.length; d++) mean[d]! += unit[d]! / rows.length;
  }
  return l2Normalize(Float32Array.from(mean));
}

/**
 * image [D] (unit) and its first pass (every label, best first, as classify returns it) -> the top K
 * re-scored with their descriptions. Equal scores keep first-pass order (stable sorts on both sides).
 */
export async function rerank(image: Float32Array, firstPass: LabelScore[], k: number, describe: PairDescriber,
  embedTexts: TextEmbedder, info: VisionInfo): Promise<FuddRanking> {
  const candidates = firstPass.slice(0, Math.max(1, Math.min(k, firstPass.length)));
  const labels = candidates.map((c) => c.label);
  const descriptions = await classDescriptions(labels, describe, info.template);
  const texts = unique(labels.flatMap((c) => descriptions[c]!));
  const embedded = await embedTexts(texts); // each distinct text once
  const byText = new Map(texts.map((t, i) => [t, embedded[i]!]));
  const classes = labels.map((c) => classEmbedding(descriptions[c]!.map((t) => byText.get(t)!)));
  const similarities = Object.fromEntries(labels.map((c) =>
    [c, descriptions[c]!.map((t) => dot(image, l2Normalize(byText.get(t)!)))]));
  return { candidates, reranked: scoreLabels(image, classes, labels, info), descriptions, similarities };
}
