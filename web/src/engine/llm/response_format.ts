// The OpenAI `response_format` request field, checked on the main thread and turned into the
// grammar the worker compiles (grammar.ts). Shapes as OpenAI and WebLLM spell them:
//   {type: "text"} (free text), {type: "json_object"} (one JSON object, as OpenAI defines it),
//   {type: "json_schema", json_schema: {name, schema, strict?, description?}},
//   {type: "grammar", grammar: "<EBNF>"} (WebLLM's extension; xgrammar's EBNF dialect, root rule `root`).

export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; json_schema: { name: string; schema?: Record<string, unknown>; strict?: boolean; description?: string } }
  | { type: "grammar"; grammar: string };

/** What crosses the worker boundary: one grammar to compile, keyed by its own text (the cache key). */
export type GrammarSpec =
  | { kind: "any_json" }
  | { kind: "json_schema"; schema: string }
  | { kind: "grammar"; ebnf: string }
  /** xgrammar's structural tag (JSON text): tool_choice "auto" (tools.ts). */
  | { kind: "structural_tag"; tag: string };

export const RESPONSE_FORMAT_TYPES = ["text", "json_object", "json_schema", "grammar"] as const;

/** A stable text of the grammar: equal specs share one compiled grammar in the worker. */
export function grammarKey(spec: GrammarSpec): string {
  switch (spec.kind) {
    case "any_json": return "any_json";
    case "json_schema": return `schema:${spec.schema}`;
    case "grammar": return `ebnf:${spec.ebnf}`;
    case "structural_tag": return `tag:${spec.tag}`;
  }
}

/** {type: "json_object"} as OpenAI defines it: the reply is one JSON object. */
const ANY_OBJECT_SCHEMA = JSON.stringify({ type: "object" });

/**
 * Checks `response_format` and returns the grammar to enforce, or null for free text. Throws
 * `invalid(message, fix)` naming the bad part. The schema itself is compiled in the worker; here
 * only its shape is checked (a JSON object that survives JSON.stringify).
 */
export function grammarSpec(format: unknown, invalid: (message: string, fix?: string) => Error): GrammarSpec | null {
  if (format === undefined || format === null) return null;
  const types = RESPONSE_FORMAT_TYPES.map((t) => `"${t}"`).join(", ");
  if (typeof format !== "object" || Array.isArray(format)) {
    throw invalid(`response_format must be an object like {type: "json_object"}, got ${JSON.stringify(format)}`);
  }
  const f = format as Record<string, unknown>;
  switch (f.type) {
    case "text":
      return null;
    case "json_object":
      // OpenAI's json_object means "an object"; a bare schema keeps xgrammar's JSON rules for values.
      return { kind: "json_schema", schema: ANY_OBJECT_SCHEMA };
    case "json_schema": {
      const spec = f.json_schema as Record<string, unknown> | undefined;
      if (!spec || typeof spec !== "object" || Array.isArray(spec)) {
        throw invalid('response_format.json_schema must be an object {name, schema, strict}',
          'e.g. {type: "json_schema", json_schema: {name: "answer", schema: {type: "object", ...}}}');
      }
      if (typeof spec.name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(spec.name)) {
        throw invalid(`response_format.json_schema.name must be 1-64 letters, digits, "_" or "-", got ${JSON.stringify(spec.name)}`);
      }
      if (spec.strict !== undefined && typeof spec.strict !== "boolean") {
        throw invalid("response_format.json_schema.strict must be a boolean");
      }
      const schema = spec.schema ?? {}; // OpenAI: no schema means any JSON
      if (typeof schema !== "object" || Array.isArray(schema) || schema === null) {
        throw invalid(`response_format.json_schema.schema must be a JSON Schema object, got ${JSON.stringify(schema)}`);
      }
      let text: string;
      try {
        text = JSON.stringify(schema);
      } catch (err) {
        throw invalid(`response_format.json_schema.schema cannot be written as JSON: ${String(err)}`);
      }
      return Object.keys(schema).length === 0 ? { kind: "any_json" } : { kind: "json_schema", schema: text };
    }
    case "grammar":
      if (typeof f.grammar !== "string" || f.grammar.trim() === "") {
        throw invalid("response_format.grammar must be a non-empty EBNF string",
          'e.g. {type: "grammar", grammar: \'root ::= "yes" | "no"\'} (xgrammar EBNF, start rule `root`)');
      }
      return { kind: "grammar", ebnf: f.grammar };
    default:
      throw invalid(`response_format.type must be one of ${types}, got ${JSON.stringify(f.type)}`);
  }
}
