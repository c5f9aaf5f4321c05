// OpenAI function calling on a model without a tool-call format of its own: the tools are described
// in a system message, and the reply is generated under a JSON schema built from the tool
// definitions ({"name": <one of the tools>, "arguments": <that tool's parameters>}), so every call
// names a real tool with arguments that fit its schema. Returned as choices[0].message.tool_calls.
// tool_choice: "none" (plain reply), "required" (some tool), {type: "function", function: {name}},
// and "auto": the model may answer in text or call a tool. For "auto" the grammar is one of
// xgrammar's structural tags (triggered_tags): free text until the model writes "<tool_call>", then
// the call under the same schema, then "</tool_call>" and the end (one call at most). Text before the
// tag becomes message.content; the tag's JSON becomes message.tool_calls.

import type { ChatMessage } from "./chat";
import type { GrammarSpec } from "./response_format";

export interface ToolDefinition {
  type: "function";
  function: { name: string; description?: string; parameters?: Record<string, unknown> };
}

export type ToolChoice = "none" | "auto" | "required" | { type: "function"; function: { name: string } };

export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** How a reply carries its call: the whole reply is the JSON ("json"), or it is inside <tool_call> tags ("tagged"). */
export type ToolReply = "none" | "json" | "tagged";

/** What a tool request changes: the grammar, the messages (a system note listing the tools), how to read the reply. */
export interface ToolPlan {
  grammar: GrammarSpec;
  messages: ChatMessage[];
  reply: Exclude<ToolReply, "none">;
}

/** The tags around a call under tool_choice "auto" (the Hermes / Qwen spelling many models were trained on). */
export const TOOL_CALL_BEGIN = "<tool_call>";
export const TOOL_CALL_END = "</tool_call>";

type Invalid = (message: string, fix?: string) => Error;

function checkTools(tools: unknown, invalid: Invalid): ToolDefinition[] {
  if (!Array.isArray(tools)) throw invalid("tools must be a list of {type: \"function\", function: {name, parameters}}");
  tools.forEach((t: ToolDefinition, i) => {
    if (t?.type !== "function" || typeof t.function?.name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(t.function.name)) {
      throw invalid(`tools[${i}] must be {type: "function", function: {name (1-64 letters, digits, _ or -), parameters}}`);
    }
    const p = t.function.parameters;
    if (p !== undefined && (typeof p !== "object" || p === null || Array.isArray(p))) {
      throw invalid(`tools[${i}].function.parameters must be a JSON Schema object`);
    }
  });
  const names = tools.map((t: ToolDefinition) => t.function.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw invalid(`tools: the name ${dup} is used twice`);
  return tools as ToolDefinition[];
}

/** The tool-call plan for a request, or null when no tool may be called (no tools, or tool_choice "none"). */
export function toolPlan(req: { tools?: unknown; tool_choice?: unknown; stream?: boolean; response_format?: unknown },
  messages: ChatMessage[], invalid: Invalid): ToolPlan | null {
  const choice = req.tool_choice ?? (req.tools ? "required" : "none");
  if (req.tools === undefined || req.tools === null || (Array.isArray(req.tools) && req.tools.length === 0)) {
    if (choice !== "none") throw invalid("tool_choice needs tools", "pass tools: [{type: \"function\", function: {...}}]");
    return null;
  }
  const tools = checkTools(req.tools, invalid);
  if (choice === "none") return null;
  let chosen = tools;
  if (choice !== "required" && choice !== "auto") {
    const name = (choice as { function?: { name?: unknown } })?.function?.name;
    chosen = tools.filter((t) => t.function.name === name);
    if (chosen.length === 0) {
      throw invalid(`tool_choice names ${JSON.stringify(name)}, which is not among the tools`,
        `one of: ${tools.map((t) => t.function.name).join(", ")}`);
    }
  }
  if (req.stream) throw invalid("tools cannot be streamed here", "call without stream: true");
  if (req.response_format !== undefined) throw invalid("tools and response_format cannot be combined", "pass one of them");
  const call = (t: ToolDefinition) => ({
    type: "object",
    properties: { name: { const: t.function.name }, arguments: t.function.parameters ?? { type: "object" } },
    required: ["name", "arguments"],
    additionalProperties: false,
  });
  const schema = chosen.length === 1 ? call(chosen[0]!) : { anyOf: chosen.map(call) };
  const listing = chosen.map((t) => `- ${t.function.name}: ${t.function.description ?? ""} `
    + `parameters: ${JSON.stringify(t.function.parameters ?? {})}`).join("\n");
  const how = choice === "auto"
    ? `To call one, reply with ${TOOL_CALL_BEGIN}{"name": ..., "arguments": {...}}${TOOL_CALL_END}; otherwise answer in text.`
    : 'Reply with one call as JSON: {"name": ..., "arguments": {...}}.';
  const note = `You can call these functions:\n${listing}\n${how}`;
  const system = messages[0]?.role === "system" ? messages[0] : null;
  const rest = system ? messages.slice(1) : messages;
  const withNote = [{ role: "system" as const, content: system ? `${system.content}\n\n${note}` : note }, ...rest];
  if (choice !== "auto") return { grammar: { kind: "json_schema", schema: JSON.stringify(schema) }, messages: withNote, reply: "json" };
  const tag = {
    type: "structural_tag",
    format: {
      type: "triggered_tags",
      triggers: [TOOL_CALL_BEGIN],
      tags: [{ type: "tag", begin: TOOL_CALL_BEGIN, content: { type: "json_schema", json_schema: schema }, end: TOOL_CALL_END }],
      at_least_one: false,
      stop_after_first: true,
    },
  };
  return { grammar: { kind: "structural_tag", tag: JSON.stringify(tag) }, messages: withNote, reply: "tagged" };
}

let callCounter = 0;

/** The generated JSON as an OpenAI tool call (the grammar guarantees its shape unless max_tokens cut it). */
export function toToolCall(text: string): ToolCall | null {
  let call: { name: string; arguments: unknown };
  try {
    call = JSON.parse(text) as { name: string; arguments: unknown };
  } catch {
    return null; // cut by max_tokens: the caller reports finish_reason "length" with the text
  }
  callCounter += 1;
  return { id: `call_${Date.now().toString(36)}${callCounter}`, type: "function",
    function: { name: call.name, arguments: JSON.stringify(call.arguments) } };
}

/**
 * A reply as the assistant message: text, or a call (with any text before it as content). A call
 * cut by max_tokens stays text, as OpenAI returns it with finish_reason "length".
 */
export function toolReply(text: string, reply: ToolReply): { content: string | null; call: ToolCall | null } {
  if (reply === "none") return { content: text, call: null };
  if (reply === "json") {
    const call = toToolCall(text);
    return call ? { content: null, call } : { content: text, call: null };
  }
  const begin = text.indexOf(TOOL_CALL_BEGIN);
  const end = text.lastIndexOf(TOOL_CALL_END);
  if (begin < 0 || end < begin) return { content: text, call: null };
  const call = toToolCall(text.slice(begin + TOOL_CALL_BEGIN.length, end));
  if (!call) return { content: text, call: null };
  const before = text.slice(0, begin).trim();
  return { content: before === "" ? null : before, call };
}
