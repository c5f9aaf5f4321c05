// Where FuDD's differential descriptions come from in the engine: descriptions the caller gives, or
// the loaded chat model (through the answer cache). Mirrors reference/descriptions.py: each unordered
// class pair is described once, labels in sorted (code point) order, which is both the cache key and
// the order the LLM sees them; a pair with nothing usable falls back to the template prompts, and
// every fallback is reported with the answer and the parser's reasons.

import type { AnswerCache } from "./cache";
import { answerKey } from "./cache";
import { type ChatTurn, formatFailure, type FuddPrompt } from "./fudd";
import { applyTemplate } from "../vision/scoring";
import type { GrammarSpec } from "../llm/response_format";
import type { Checked, SeparationCheck } from "./separation";

/** Descriptions written elsewhere (e.g. a FuDD pairwise file): full texts for labels[0] and labels[1]. */
export interface GivenPair {
  labels: [string, string];
  /** (describes labels[0], describes labels[1]) */
  pairs: Array<[string, string]>;
}

export type DescriptionSource = "llm" | "cache" | "given";

/** How one class pair was described. */
export interface PairOutcome {
  /** sorted */
  labels: [string, string];
  source: DescriptionSource;
  /** true: the template prompts, because the source had nothing usable */
  fallback: boolean;
  /** descriptions of labels[0] */
  first: string[];
  /** descriptions of labels[1] */
  second: string[];
  /** LLM (or cached) answer, its tokens (with the stop token if it stopped), features kept and lines rejected */
  raw?: string;
  tokenIds?: number[];
  features?: Array<[string, string]>;
  rejected?: Array<[string, string]>;
  /** No line of `raw` had the format, so the pair was asked again as JSON: that answer (features and rejected are its). */
  retried?: { raw: string; tokenIds: number[] };
  /** When the LLM was asked now: its prompts' tokens, and how many came from the KV cache of the request before. */
  prefill?: { promptTokens: number; cachedTokens: number };
  /** Each parsed feature pair, separation-checked (separation.ts); first/second hold the kept ones. */
  checks?: Checked[];
}

/** Reported after each class pair is described. */
export interface FuddProgress {
  done: number;
  total: number;
  labels: [string, string];
  source: DescriptionSource;
}

/**
 * One greedy chat generation: the text (stop token excluded), every token generated (stop token
 * included), the prompt's length and how many of its tokens the KV cache supplied (FuDD's fixed
 * instructions are the same for every pair, so later pairs prefill only their own tokens).
 */
export type Generate = (messages: ChatTurn[], maxNewTokens: number, grammar?: GrammarSpec)
  => Promise<{ text: string; tokenIds: number[]; promptTokens: number; cachedTokens: number }>;

/** Python's str ordering (code points), which differs from JavaScript's UTF-16 order beyond the BMP. */
export function byCodePoint(a: string, b: string): number {
  const [x, y] = [[...a], [...b]];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

export function sortedPair(a: string, b: string): [string, string] {
  return byCodePoint(a, b) <= 0 ? [a, b] : [b, a];
}

/** Callable per pair through `describe` (a PairDescriber for rerank), memoized per unordered pair. */
export abstract class Describer {
  private readonly outcomes = new Map<string, Promise<PairOutcome>>();

  constructor(protected readonly template: string) {}

  /** (a, b) -> [descriptions of a, descriptions of b] */
  readonly describe = async (a: string, b: string): Promise<[string[], string[]]> => {
    const report = await this.report(a, b);
    return report.labels[0] === a ? [report.first, report.second] : [report.second, report.first];
  };

  /** Describes the pairs in order (each once), reporting progress after each. */
  async prepare(pairs: Array<[string, string]>, onProgress?: (p: FuddProgress) => void): Promise<void> {
    const todo = [...new Map(pairs.map((p) => sortedPair(...p)).map((p) => [JSON.stringify(p), p])).values()];
    for (const [i, labels] of todo.entries()) {
      const report = await this.report(...labels);
      onProgress?.({ done: i + 1, total: todo.length, labels, source: report.source });
    }
  }

  async reports(): Promise<PairOutcome[]> {
    return Promise.all(this.outcomes.values());
  }

  /** How the pair (either order) was described; described now if it was not yet. */
  report(a: string, b: string): Promise<PairOutcome> {
    const labels = sortedPair(a, b);
    const key = JSON.stringify(labels);
    let report = this.outcomes.get(key);
    if (!report) {
      report = this.describePair(labels);
      this.outcomes.set(key, report);
    }
    return report;
  }

  /** labels sorted */
  protected abstract describePair(labels: [string, string]): Promise<PairOutcome>;

  protected fallback(labels: [string, string], source: DescriptionSource, extra: Partial<PairOutcome> = {}): PairOutcome {
    return { labels, source, fallback: true, first: [applyTemplate(this.template, labels[0])],
      second: [applyTemplate(this.template, labels[1])], ...extra };
  }
}

export class GivenDescriber extends Describer {
  private readonly given = new Map<string, Array<[string, string]>>();

  constructor(pairs: GivenPair[], template: string) {
    super(template);
    for (const { labels: [a, b], pairs: texts } of pairs) {
      const labels = sortedPair(a, b);
      const oriented = labels[0] === a ? texts : texts.map(([x, y]): [string, string] => [y, x]);
      this.given.set(JSON.stringify(labels), oriented);
    }
  }

  protected async describePair(labels: [string, string]): Promise<PairOutcome> {
    const texts = this.given.get(JSON.stringify(labels));
    if (!texts?.length) return this.fallback(labels, "given");
    return { labels, source: "given", fallback: false, first: texts.map(([x]) => x), second: texts.map(([, y]) => y) };
  }
}

/**
 * How the LLM is asked: lines "fa | fb"; JSON under prompt.schema() (its format cannot fail); or lines,
 * asked again as JSON when no line of the answer has the format (the default: fast when the lines
 * work, which they mostly do, and never a fallback for the format alone).
 */
export type AnswerFormat = "lines" | "json" | "lines-then-json";

interface Answer { text: string; tokenIds: number[]; fromCache: boolean; prefill?: { promptTokens: number; cachedTokens: number } }

/**
 * One greedy generation per class pair with the shared prompt (or its cached answer), parsed strictly;
 * with a separation check, only the feature pairs that separate the two classes are kept.
 */
export class LlmDescriber extends Describer {
  llmCalls = 0;
  cacheHits = 0;

  constructor(private readonly prompt: FuddPrompt, private readonly model: { id: string; revision: string },
    private readonly generate: Generate, private readonly cache: AnswerCache, template: string,
    private readonly n: number = prompt.data.pairs_per_class_pair,
    private readonly format: AnswerFormat = "lines-then-json",
    private readonly check: SeparationCheck | null = null) {
    super(template);
  }

  /** The answer in one format: from the cache, else generated now (and cached). */
  private async answer([a, b]: [string, string], json: boolean): Promise<Answer> {
    const key = answerKey(this.model, json ? `${this.prompt.version}-json` : this.prompt.version, this.n, [a, b]);
    const cached = await this.cache.get(key);
    if (cached) {
      this.cacheHits++;
      return { text: cached.text, tokenIds: cached.tokenIds, fromCache: true };
    }
    const generated = json
      ? await this.generate(this.prompt.structuredMessages(a, b, this.n), this.prompt.structuredMaxNewTokens,
        { kind: "json_schema", schema: this.prompt.schema(a, b, this.n) })
      : await this.generate(this.prompt.messages(a, b, this.n), this.prompt.maxNewTokens);
    this.llmCalls++;
    await this.cache.put({ key, text: generated.text, tokenIds: generated.tokenIds, savedAt: Date.now() });
    return { text: generated.text, tokenIds: generated.tokenIds, fromCache: false,
      prefill: { promptTokens: generated.promptTokens, cachedTokens: generated.cachedTokens } };
  }

  protected async describePair(labels: [string, string]): Promise<PairOutcome> {
    const [a, b] = labels;
    const first = await this.answer(labels, this.format === "json");
    let parsed = this.format === "json"
      ? this.prompt.parseStructured(first.text, a, b, this.n)
      : this.prompt.parse(first.text, a, b, this.n);
    const answers = [first];
    if (this.format === "lines-then-json" && formatFailure(parsed)) {
      answers.push(await this.answer(labels, true));
      parsed = this.prompt.parseStructured(answers[1]!.text, a, b, this.n);
    }
    const asked = answers.filter((x) => x.prefill);
    const source: DescriptionSource = asked.length ? "llm" : "cache";
    const seen = {
      raw: first.text, tokenIds: first.tokenIds, features: parsed.pairs, rejected: parsed.rejected,
      ...(answers[1] && { retried: { raw: answers[1].text, tokenIds: answers[1].tokenIds } }),
      ...(asked.length && { prefill: {
        promptTokens: asked.reduce((s, x) => s + x.prefill!.promptTokens, 0),
        cachedTokens: asked.reduce((s, x) => s + x.prefill!.cachedTokens, 0),
      } }),
    };
    if (parsed.pairs.length === 0) return this.fallback(labels, source, seen);
    const texts = parsed.pairs.map(([fa, fb]): [string, string] =>
      [this.prompt.description(this.template, a, fa), this.prompt.description(this.template, b, fb)]);
    const checks = this.check ? await this.check(labels, parsed.pairs, texts) : undefined;
    const kept = checks ? checks.filter((c) => c.kept).map((c) => c.descriptions) : texts;
    const checked = { ...seen, ...(checks && { checks }) };
    if (kept.length === 0) return this.fallback(labels, source, checked);
    return { labels, source, fallback: false, ...checked, first: kept.map(([x]) => x), second: kept.map(([, y]) => y) };
  }
}
