// FuDD through the engine (in the worker): classify with re-ranking, and the explorer that ranks a
// class's descriptions by how well the vision model matches them to the user's images ("If CLIP
// Could Talk"). The re-ranking itself is fudd.ts; the descriptions come from describer.ts.

import type { ChatMessage, GenerationParams } from "../llm/chat";
import { InvalidRequestError, ModelNotLoadedError } from "../errors";
import { type FuddPrompt, type FuddRanking, rerank, type TextEmbedder } from "./fudd";
import { answerCache } from "./cache";
import {
  type Describer, type FuddProgress, type Generate, GivenDescriber, type GivenPair, LlmDescriber, type PairOutcome,
} from "./describer";
import type { LlmModel } from "../llm/onnx_chat_model";
import type { VisionInfo } from "../manifest.gen";
import { applyTemplate, dot, type LabelScore, scoreLabels } from "../vision/scoring";

export const DEFAULT_K = 5;

/** `engine.classify({..., fudd})` as it crosses to the worker. */
export interface FuddOptionsWire {
  /** Candidates re-ranked per image: default 5 (or fewer labels). */
  k?: number;
  /** Description pairs asked per class pair; default: contract/fudd_prompt.json's. */
  pairsPerClass?: number;
  /** Fixed descriptions instead of the LLM's (e.g. from a FuDD pairwise file). */
  descriptions?: GivenPair[];
  /** Constrain the chat model's answers to a JSON schema (xgrammar), so none fails for its format; default false. */
  structured?: boolean;
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
}

export interface RankedDescription {
  text: string;
  /** Mean cosine with the images. */
  cosine: number;
  perImage: number[];
  /** The class it was written against; null for given descriptions and the template prompt. */
  against: string | null;
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
  if (o.structured !== undefined && typeof o.structured !== "boolean") {
    throw new InvalidRequestError(`fudd.structured must be a boolean, got ${JSON.stringify(o.structured)}`);
  }
  const bad = (o.descriptions ?? []).findIndex((g) => !Array.isArray(g?.labels) || g.labels.length !== 2
    || !Array.isArray(g.pairs) || g.pairs.some((p) => !Array.isArray(p) || p.length !== 2));
  if (bad >= 0) {
    throw new InvalidRequestError(`fudd.descriptions[${bad}] must be {labels: [a, b], pairs: [[for a, for b], ...]}`);
  }
}

/** What writes the descriptions: the given ones, else the loaded chat model (greedy, cached). */
export async function makeDescriber(prompt: FuddPrompt, chat: LlmModel | null, template: string,
  given?: GivenPair[], pairsPerClass?: number, structured = false): Promise<DescriptionWriter> {
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
  return {
    describer: new LlmDescriber(prompt, chat.info, generate, cache, template, pairsPerClass, structured),
    llm: chat.info.id, cache: cache.kind,
  };
}

async function stats(describer: Describer, llm: string | null, cache: string | null): Promise<FuddStats> {
  const pairs = await describer.reports();
  const llmDescriber = describer instanceof LlmDescriber ? describer : null;
  return { llm, llmCalls: llmDescriber?.llmCalls ?? 0, cacheHits: llmDescriber?.cacheHits ?? 0,
    fallbacks: pairs.filter((p) => p.fallback).length, cache, pairs,
    prefillTokens: pairs.reduce((s, p) => s + (p.prefill ? p.prefill.promptTokens - p.prefill.cachedTokens : 0), 0),
    prefillTokensSaved: pairs.reduce((s, p) => s + (p.prefill?.cachedTokens ?? 0), 0) };
}

/** Each distinct text embedded once per request. */
function memoized(embed: TextEmbedder): TextEmbedder {
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
  const embed = memoized(embedTexts);
  const out: FuddImage[] = [];
  for (const [i, image] of images.entries()) {
    const ranking = await rerank(image, firstPasses[i]!, k, made.describer.describe, embed, info);
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
}

/** images [N][D] (unit) -> the class's descriptions ranked by mean cosine with them. */
export async function explainClass(request: ExplainRequestWire, images: Float32Array[], template: string,
  made: DescriptionWriter, embedTexts: TextEmbedder,
  onProgress: (p: FuddProgress) => void): Promise<ClassExplanation> {
  const { label } = request;
  const candidates = new Map<string, string | null>(); // text -> written against
  for (const text of request.descriptions ?? []) if (!candidates.has(text)) candidates.set(text, null);
  const others = (request.against ?? []).filter((o) => o !== label);
  await made.describer.prepare(others.map((o): [string, string] => [label, o]), onProgress);
  for (const other of others) {
    const pair = await made.describer.report(label, other);
    if (pair.fallback) continue; // the template prompt is the baseline, not a description
    for (const text of pair.labels[0] === label ? pair.first : pair.second) {
      if (!candidates.has(text)) candidates.set(text, other);
    }
  }
  const templateText = applyTemplate(template, label);
  const texts = [templateText, ...candidates.keys()];
  const embedded = await embedTexts(texts);
  const rank = (text: string, i: number, against: string | null): RankedDescription => {
    const perImage = images.map((img) => dot(img, embedded[i]!));
    return { text, cosine: perImage.reduce((s, c) => s + c, 0) / perImage.length, perImage, against };
  };
  const descriptions = texts.slice(1).map((t, i) => rank(t, i + 1, candidates.get(t) ?? null))
    .sort((x, y) => y.cosine - x.cosine);
  return { label, template: rank(templateText, 0, null), descriptions, ...await stats(made.describer, made.llm, made.cache) };
}
