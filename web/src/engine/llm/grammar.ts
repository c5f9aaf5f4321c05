// Grammar-constrained decoding in the worker with xgrammar's WASM build (@mlc-ai/web-xgrammar, what
// WebLLM uses): the model's vocabulary becomes an xgrammar TokenizerInfo once per model, each
// response_format compiles once (cached by its text), and each request gets a GrammarMatcher that
// says, before every step, which tokens may come next. Masking happens on the logits, before
// sampling, so the reply is valid by construction. Python's `xgrammar` (reference/constrained.py)
// builds the same TokenizerInfo and compiles with the same options: the masks are compared in tests.

import type * as Xgr from "@mlc-ai/web-xgrammar";
import { InferenceError, InvalidRequestError } from "../errors";
import { grammarKey, type GrammarSpec } from "./response_format";

type XgrammarModule = typeof Xgr;

/** JSON as the compiler writes it for schemas: compact, one space after "," and ":" (set in Python too). */
export const JSON_SEPARATORS: [string, string] = [", ", ": "];

let xgrammarModule: Promise<XgrammarModule> | null = null;
/** The last "[FATAL] ..." line xgrammar printed: its WASM aborts with a bare "Aborted()" error. */
let lastFatal = "";
/** While compiling: xgrammar's failure lines become the thrown error's message, not console noise. */
let compiling = false;

function loadXgrammar(): Promise<XgrammarModule> {
  xgrammarModule ??= (async () => {
    // Emscripten binds console.error when the module starts: wrap it first to keep the reason.
    const print = console.error.bind(console);
    console.error = (...args: unknown[]) => {
      const line = args.map(String).join(" ");
      if (compiling && line.startsWith("[FATAL]")) lastFatal = line.replace(/^\[FATAL\] \S+: /, "");
      if (compiling && (line.startsWith("[FATAL]") || line.startsWith("Aborted("))) return;
      print(...args);
    };
    // A UMD bundle: bundlers wrap it as CommonJS (named exports, or all under `default`); loaded
    // as a plain ES module it sets globalThis.xgrammar instead.
    const imported = (await import("@mlc-ai/web-xgrammar")) as Partial<XgrammarModule> & { default?: XgrammarModule };
    const mod = [imported, imported.default, (globalThis as { xgrammar?: XgrammarModule }).xgrammar]
      .find((m): m is XgrammarModule => typeof m?.GrammarCompiler === "function");
    if (!mod?.GrammarCompiler) throw new InferenceError("@mlc-ai/web-xgrammar did not load", "reload the page");
    return mod;
  })();
  return xgrammarModule;
}

/**
 * tokenizer.json's vocabulary as xgrammar wants it: token strings in their encoded (byte-level,
 * "Ġ" for a space) form, indexed by id, `vocabSize` long (the logits' width; ids without a token
 * get "", which xgrammar never allows).
 */
export function encodedVocab(tokenizerJson: { model?: { vocab?: Record<string, number> }; added_tokens?: Array<{ id: number; content: string }> },
  vocabSize: number): string[] {
  const vocab = new Array<string>(vocabSize).fill("");
  for (const [token, id] of Object.entries(tokenizerJson.model?.vocab ?? {})) if (id < vocabSize) vocab[id] = token;
  for (const added of tokenizerJson.added_tokens ?? []) if (added.id < vocabSize) vocab[added.id] = added.content;
  return vocab;
}

/** One model's grammar compiler and its compiled grammars (one per distinct response_format). */
export class GrammarCompilers {
  private compiler: Promise<Xgr.GrammarCompiler> | null = null;
  private readonly compiled = new Map<string, Promise<Xgr.CompiledGrammar>>();

  constructor(private readonly vocab: string[], private readonly stopIds: number[]) {}

  private async compilerFor(xgr: XgrammarModule): Promise<Xgr.GrammarCompiler> {
    this.compiler ??= (async () => {
      const info = await xgr.TokenizerInfo.createTokenizerInfo(this.vocab, "byte_level", false, this.vocab.length, this.stopIds);
      return xgr.GrammarCompiler.createGrammarCompiler(info);
    })();
    return this.compiler;
  }

  /** Compiles `spec` (or reuses it); a bad schema or grammar is an InvalidRequestError with xgrammar's reason. */
  async compile(spec: GrammarSpec): Promise<Xgr.CompiledGrammar> {
    const key = grammarKey(spec);
    let compiled = this.compiled.get(key);
    if (!compiled) {
      compiled = this.compileNow(spec);
      this.compiled.set(key, compiled);
      compiled.catch(() => this.compiled.delete(key));
    }
    return compiled;
  }

  private async compileNow(spec: GrammarSpec): Promise<Xgr.CompiledGrammar> {
    const xgr = await loadXgrammar();
    const compiler = await this.compilerFor(xgr);
    lastFatal = "";
    compiling = true;
    try {
      if (spec.kind === "any_json") return await compiler.compileBuiltinJSONGrammar();
      if (spec.kind === "json_schema") return await compiler.compileJSONSchema(spec.schema, false, -1, JSON_SEPARATORS, true);
      if (spec.kind === "structural_tag") return await compiler.compileStructuralTag(spec.tag);
      return await compiler.compileGrammar(spec.ebnf);
    } catch (err) {
      // The WASM aborted mid-call: start a fresh compiler next time rather than trust its state.
      this.compiler = null;
      this.compiled.clear();
      const what = spec.kind === "grammar" ? "response_format.grammar (EBNF)"
        : spec.kind === "structural_tag" ? "tools (tool_choice \"auto\")" : "response_format.json_schema.schema";
      throw new InvalidRequestError(`${what} could not be compiled: ${lastFatal || String(err)}`,
        spec.kind === "grammar"
          ? 'write xgrammar EBNF with a `root` rule, e.g. root ::= "yes" | "no"'
          : "give a valid JSON Schema (draft 2020-12 subset: type, properties, required, items, enum, const, minLength/maxLength, $defs/$ref)");
    } finally {
      compiling = false;
    }
  }

  /** A fresh matcher over `spec` for one request. */
  async matcher(spec: GrammarSpec): Promise<ConstrainedDecoder> {
    const xgr = await loadXgrammar();
    const compiled = await this.compile(spec);
    return new ConstrainedDecoder(await xgr.GrammarMatcher.createGrammarMatcher(compiled));
  }
}

/** One request's grammar state: masks each step's logits, then follows the chosen token. */
export class ConstrainedDecoder {
  /** Milliseconds spent computing masks and applying them (reported in usage). */
  maskMs = 0;
  steps = 0;

  constructor(private readonly matcher: Xgr.GrammarMatcher) {}

  /** A copy of `logits` [vocab] with every token the grammar forbids at -Infinity. */
  async mask(logits: Float32Array): Promise<Float32Array> {
    const start = performance.now();
    const bitmask = await this.matcher.getNextTokenBitmask(); // [ceil(vocab / 32)] int32, bit set = allowed
    const masked = new Float32Array(logits.length).fill(-Infinity);
    for (let word = 0; word < bitmask.length; word++) {
      let bits = bitmask[word]!;
      while (bits !== 0) {
        const bit = 31 - Math.clz32(bits & -bits); // lowest set bit
        const id = word * 32 + bit;
        if (id < logits.length) masked[id] = logits[id]!;
        bits &= bits - 1;
      }
    }
    this.maskMs += performance.now() - start;
    this.steps += 1;
    return masked;
  }

  /** Advances the grammar by the token that was sampled from the masked logits. */
  accept(token: number): void {
    if (!this.matcher.acceptToken(token)) {
      throw new InferenceError(`the grammar rejected token ${token}, which its own mask allowed`, "report this as a bug");
    }
  }

  dispose(): void {
    this.matcher.dispose();
  }
}
