// FuDD through the engine (in the worker): classify with re-ranking, and the explorer that ranks a
// class's descriptions by how well the vision model matches them to the user's images ("If CLIP
// Could Talk"). The re-ranking itself is fudd.ts; the descriptions come from describer.ts.

import type { ChatMessage, GenerationParams } from "../llm/chat";
import { InvalidRequestError, ModelNotLoadedError } from "../errors";
import { type FuddPrompt, type FuddRanking, rerank, type TextEmbedder } from "./fudd";
import { answerCache } from "./cache";
import {
  type AnswerFormat, type Describer, type FuddProgress, type Generate, GivenDescriber, type GivenPair, LlmDescriber,
  type PairOutcome,
} from "./describer";
import type { LlmModel } from "../llm/onnx_chat_model";
import type { VisionInfo } from "../manifest.gen";
import { applyTemplate, dot, l2Normalize, type LabelScore, scoreLabels } from "../vision/scoring";
import { imageSeparation, separationCheck } from "./separation";

export const DEFAULT_K = 5;

/** `engine.classify({..., fudd})` as it crosses to the worker. */
export interface FuddOptionsWire {
  /** Candidates re-ranked per image: default 5 (or fewer labels). */
  k?: number;
  /** Description pairs asked per class pair; default: contract/fudd_prompt.json's. */
  pairsPerClass?: number;
  /** Fixed descriptions instead of the LLM's (e.g. from a FuDD pairwise file). */
  descriptions?: GivenPair[];
  /**
   * true: every answer as JSON under a schema (xgrammar), so none fails for its format; false: lines
   * only; default: lines, and a pair whose answer has no well-formed line is asked again as JSON.
   */
  structured?: boolean;
  /** Drop LLM-written feature pairs that do not separate their classes in the vision model's text space; default true. */
  separationCheck?: boolean;
}

export interface FuddImage extends FuddRanking {
  /** Every label with the template (or the best topK), as plain classify returns it. */
  firstPass: LabelScore[];
}

export interface FuddStats {
  /** The chat model that wrote the descriptions; null when they were given. */
  llm: string | null;
  /** Class pairs the LLM was asked about now; cached answers are not asked again. */
  llmCalls: number;
  cacheHits: number;
  /** Class pairs that fell back to the template prompts (nothing usable). */
  fallbacks: number;
  /** Class pairs whose line answer had no well-formed line, so they were asked again as JSON. */
  jsonRetries: number;
  /** Of the fallbacks, the pairs whose every parsed feature pair the separation check dropped. */
  separationFallbacks: number;
  /** Parsed feature pairs the separation check dropped, over every class pair. */
  separationDrops: number;
  /** Where answers are cached: "indexeddb", or "memory (why)"; null when descriptions were given. */
  cache: string | null;
  /** Every class pair described, sorted labels. */
  pairs: PairOutcome[];
  /** Over the pairs the LLM was asked now: prompt tokens prefilled, and those the KV cache supplied instead. */
  prefillTokens: number;
  prefillTokensSaved: number;
}

export interface FuddClassification extends FuddStats {
  k: number;
  images: FuddImage[];
}

/** `engine.explainClass(...)` as it crosses to the worker (images travel separately). */
export interface ExplainRequestWire {
  label: string;
  /** Descriptions to rank; default: the LLM's, written against each class in `against`. */
  descriptions?: string[];
  against?: string[];
  pairsPerClass?: number;
  /** As FuddOptionsWire.separationCheck; dropped descriptions are still ranked, marked `kept: false`. */
  separationCheck?: boolean;
}

export interface RankedDescription {
  text: string;
  /** Mean cosine with the images. */
  cosine: number;
  perImage: number[];
  /** The class it was written against; null for given descriptions and the template prompt. */
  against: string | null;
  /** How far the feature pair sits toward its own classes in text space (separation.ts); null when not checked. */
  textSeparation: number | null;
  /** How much the pair widens the images' margin over the two template prompts; null without a partner class. */
  imageSeparation: number | null;
  /** false: the separation check dropped it, so re-ranking does not use it. */
  kept: boolean;
}

export interface ClassExplanation extends FuddStats {
  label: string;
  /** The template prompt, as a baseline. */
  template: RankedDescription;
  /** Best first. */
  descriptions: RankedDescription[];
}

/** A describer with what the report says about it. */
export interface DescriptionWriter {
  describer: Describer;
  llm: string | null;
  cache: string | null;
}

const positiveInt = (v: number | undefined) => v === undefined || (Number.isInteger(v) && v >= 1);

export function checkFuddOptions(o: FuddOptionsWire): void {
  if (!positiveInt(o.k)) throw new InvalidRequestError(`fudd.k must be a positive integer, got ${o.k}`);
  if (!positiveInt(o.pairsPerClass)) {
    throw new InvalidRequestError(`fudd.pairsPerClass must be a positive integer, got ${o.pairsPerClass}`);
  }
  for (const flag of ["structured", "separationCheck"] as const) {
    if (o[flag] !== undefined && typeof o[flag] !== "boolean") {
      throw new InvalidRequestError(`fudd.${flag} must be a boolean, got ${JSON.stringify(o[flag])}`);
    }
  }
  const bad = (o.descriptions ?? []).findIndex((g) => !Array.isArray(g?.labels) || g.labels.length !== 2
    || !Array.isArray(g.pairs) || g.pairs.some((p) => !Array.isArray(p) || p.length !== 2));
  if (bad >= 0) {
    throw new InvalidRequestError(`fudd.descriptions[${bad}] must be {labels: [a, b], pairs: [[for a, for b], ...]}`);
  }
}

/** How the describer is asked: what makeDescriber needs beyond the prompt, model and template. */
export interface DescriberOptions {
  given?: GivenPair[];
  pairsPerClass?: number;
  structured?: boolean;
  /** Embeds for the separation check; null: no check. */
  separationEmbedder: TextEmbedder | null;
}

const answerFormat = (structured?: boolean): AnswerFormat =>
  structured === undefined ? "lines-then-json" : structured ? "json" : "lines";

/** What writes the descriptions: the given ones, else the loaded chat model (greedy, cached, checked). */
export async function makeDescriber(prompt: FuddPrompt, chat: LlmModel | null, template: string,
  { given, pairsPerClass, structured, separationEmbedder }: DescriberOptions): Promise<DescriptionWriter> {
  if (given) return { describer: new GivenDescriber(given, template), llm: null, cache: null };
  if (!chat) {
    throw new ModelNotLoadedError("FuDD needs an LLM to write its class descriptions, and none is loaded",
      "load one first (engine.loadLlm(id), or pick a model in the Chat tab), or pass fixed descriptions");
  }
  const generate: Generate = async (messages, maxNewTokens, grammar) => {
    // The prompt file's roles are system/user/assistant.
    const params: GenerationParams = { messages: messages as ChatMessage[], max_tokens: maxNewTokens,
      temperature: prompt.data.generation.temperature, top_p: 1, seed: 0, top_logprobs: -1, grammar: grammar ?? null,
      stop: [], adjust: { logitBias: [], presencePenalty: 0, frequencyPenalty: 0 }, toolCall: "none", cachePrompt: true };
    const result = await chat.generate(params, () => undefined, () => false);
    return { text: result.text, tokenIds: result.tokenIds, promptTokens: result.usage.prompt_tokens,
      cachedTokens: result.usage.prompt_tokens_details?.cached_tokens ?? 0 };
  };
  const cache = await answerCache();
  const check = separationEmbedder && separationCheck(separationEmbedder, template, prompt.data.separation.min_text);
  return {
    describer: new LlmDescriber(prompt, chat.info, generate, cache, template, pairsPerClass, answerFormat(structured), check),
    llm: chat.info.id, cache: cache.kind,
  };
}

async function stats(describer: Describer, llm: string | null, cache: string | null): Promise<FuddStats> {
  const pairs = await describer.reports();
  const llmDescriber = describer instanceof LlmDescriber ? describer : null;
  return { llm, llmCalls: llmDescriber?.llmCalls ?? 0, cacheHits: llmDescriber?.cacheHits ?? 0,
    fallbacks: pairs.filter((p) => p.fallback).length, cache, pairs,
    jsonRetries: pairs.filter((p) => p.retried).length,
    separationFallbacks: pairs.filter((p) => p.fallback && p.checks?.length).length,
    separationDrops: pairs.reduce((s, p) => s + (p.checks ?? []).filter((c) => !c.kept).length, 0),
    prefillTokens: pairs.reduce((s, p) => s + (p.prefill ? p.prefill.promptTokens - p.prefill.cachedTokens : 0), 0),
    prefillTokensSaved: pairs.reduce((s, p) => s + (p.prefill?.cachedTokens ?? 0), 0) };
}

/** Each distinct text embedded once per request (the classify pass, the check and the re-ranking share it). */
export function memoized(embed: TextEmbedder): TextEmbedder {
  const seen = new Map<string, Float32Array>();
  return async (texts) => {
    const missing = [...new Set(texts.filter((t) => !seen.has(t)))];
    if (missing.length) (await embed(missing)).forEach((e, i) => seen.set(missing[i]!, e));
    return texts.map((t) => seen.get(t)!);
  };
}

/**
 * images [N][D] and labelTexts [C][D] (unit, the template prompts) -> each image's first pass and its
 * top K re-ranked. Every class pair any image needs is described first (progress: pairs done / total).
 */
export async function classifyWithFudd(images: Float32Array[], labelTexts: Float32Array[], labels: string[],
  info: VisionInfo, options: FuddOptionsWire, made: DescriptionWriter, embedTexts: TextEmbedder,
  topK: number | undefined, onProgress: (p: FuddProgress) => void): Promise<FuddClassification> {
  const k = Math.max(1, Math.min(options.k ?? DEFAULT_K, labels.length));
  const firstPasses = images.map((img) => scoreLabels(img, labelTexts, labels, info));
  const pairs = firstPasses.flatMap((ranked) => {
    const top = ranked.slice(0, k).map((s) => s.label);
    return top.flatMap((a, i) => top.slice(i + 1).map((b): [string, string] => [a, b]));
  });
  await made.describer.prepare(pairs, onProgress);
  const out: FuddImage[] = [];
  for (const [i, image] of images.entries()) {
    const ranking = await rerank(image, firstPasses[i]!, k, made.describer.describe, embedTexts, info);
    out.push({ firstPass: topK === undefined ? firstPasses[i]! : firstPasses[i]!.slice(0, topK), ...ranking });
  }
  return { k, images: out, ...await stats(made.describer, made.llm, made.cache) };
}

export function checkExplainRequest(r: ExplainRequestWire, imageCount: number): void {
  if (typeof r.label !== "string" || !r.label.trim()) throw new InvalidRequestError("label must be a non-empty string");
  if (imageCount === 0) throw new InvalidRequestError("images must hold at least one image");
  if (!r.descriptions?.length && !r.against?.length) {
    throw new InvalidRequestError("give descriptions to rank, or classes in `against` for the LLM to write them");
  }
  if (!positiveInt(r.pairsPerClass)) throw new InvalidRequestError(`pairsPerClass must be a positive integer, got ${r.pairsPerClass}`);
  if (r.separationCheck !== undefined && typeof r.separationCheck !== "boolean") {
    throw new InvalidRequestError(`separationCheck must be a boolean, got ${JSON.stringify(r.separationCheck)}`);
  }
}

/** A description the explorer ranks, before the images: where it came from and what the check said. */
interface Candidate {
  against: string | null;
  /** The other class's side of the same feature pair. */
  partner: string | null;
  textSeparation: number | null;
  kept: boolean;
}

/** The label's side of every feature pair of one class pair: checked ones kept or not, else those used. */
function candidatesOf(pair: PairOutcome, label: string, other: string): Array<[string, Candidate]> {
  const mine = pair.labels[0] === label ? 0 : 1;
  if (pair.checks) {
    return pair.checks.map((c): [string, Candidate] => [c.descriptions[mine]!,
      { against: other, partner: c.descriptions[1 - mine]!, textSeparation: c.text, kept: c.kept }]);
  }
  if (pair.fallback) return []; // the template prompt is the baseline, not a description
  const [own, theirs] = mine === 0 ? [pair.first, pair.second] : [pair.second, pair.first];
  return own.map((text, i): [string, Candidate] => [text, { against: other, partner: theirs[i] ?? null, textSeparation: null, kept: true }]);
}

/**
 * images [N][D] (unit) -> the class's descriptions ranked by mean cosine with them, each with its
 * separation from the class it was written against (text, and over these images).
 */
export async function explainClass(request: ExplainRequestWire, images: Float32Array[], template: string,
  made: DescriptionWriter, embedTexts: TextEmbedder,
  onProgress: (p: FuddProgress) => void): Promise<ClassExplanation> {
  const { label } = request;
  const candidates = new Map<string, Candidate>();
  for (const text of request.descriptions ?? []) {
    if (!candidates.has(text)) candidates.set(text, { against: null, partner: null, textSeparation: null, kept: true });
  }
  const others = (request.against ?? []).filter((o) => o !== label);
  await made.describer.prepare(others.map((o): [string, string] => [label, o]), onProgress);
  for (const other of others) {
    for (const [text, candidate] of candidatesOf(await made.describer.report(label, other), label, other)) {
      if (!candidates.has(text)) candidates.set(text, candidate);
    }
  }
  const templateOf = (c: string) => applyTemplate(template, c);
  const texts = [...new Set([templateOf(label), ...candidates.keys(), ...others.map(templateOf),
    ...[...candidates.values()].flatMap((c) => c.partner ?? [])])];
  const embedded = await embedTexts(texts);
  const unit = new Map(texts.map((t, i) => [t, l2Normalize(embedded[i]!)]));
  const rank = (text: string, c: Candidate): RankedDescription => {
    const perImage = images.map((img) => dot(img, unit.get(text)!));
    const separation = c.partner && c.against
      ? imageSeparation(images, unit.get(text)!, unit.get(c.partner)!, unit.get(templateOf(label))!,
        unit.get(templateOf(c.against))!)
      : null;
    return { text, cosine: perImage.reduce((s, x) => s + x, 0) / perImage.length, perImage, against: c.against,
      textSeparation: c.textSeparation, imageSeparation: separation, kept: c.kept };
  };
  const descriptions = [...candidates].map(([text, c]) => rank(text, c)).sort((x, y) => y.cosine - x.cosine);
  const baseline = rank(templateOf(label), { against: null, partner: null, textSeparation: null, kept: true });
  return { label, template: baseline, descriptions, ...await stats(made.describer, made.llm, made.cache) };
}
