// OpenAI function calling on a model without a tool-call format of its own: the tools are described
// in a system message, and the reply is generated under a JSON schema built from the tool
// definitions ({"name": <one of the tools>, "arguments": <that tool's parameters>}), so every call
// names a real tool with arguments that fit its schema. Returned as choices[0].message.tool_calls.
// tool_choice: "none" (plain reply), "required" (some tool), {type: "function", function: {name}}.
// "auto" (the model decides whether to call) needs a grammar that mixes free text and JSON; it is
// refused with a named error rather than silently treated as "required".

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

/** What a tool request changes: the grammar, and the messages (a system note listing the tools). */
export interface ToolPlan {
  grammar: GrammarSpec;
  messages: ChatMessage[];
}

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
  if (choice === "auto") {
    throw invalid('tool_choice "auto" is not supported: the engine cannot let the model choose between text and a call',
      'use tool_choice "required", a named function {type: "function", function: {name}}, or "none"');
  }
  let chosen = tools;
  if (choice !== "required") {
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
  const note = `You can call these functions:\n${listing}\nReply with one call as JSON: {"name": ..., "arguments": {...}}.`;
  const system = messages[0]?.role === "system" ? messages[0] : null;
  const rest = system ? messages.slice(1) : messages;
  return {
    grammar: { kind: "json_schema", schema: JSON.stringify(schema) },
    messages: [{ role: "system", content: system ? `${system.content}\n\n${note}` : note }, ...rest],
  };
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
