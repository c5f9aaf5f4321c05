// Tool calls: the plan per tool_choice, and reading a reply back as text or a call.
import assert from "node:assert/strict";
import { test } from "node:test";
import { TOOL_CALL_BEGIN, TOOL_CALL_END, toolPlan, toolReply } from "./tools";

const invalid = (message: string) => new Error(message);
const messages = [{ role: "user" as const, content: "Weather in Paris?" }];
const tools = [{ type: "function" as const, function: { name: "get_weather", parameters: { type: "object",
  properties: { city: { type: "string" } }, required: ["city"] } } }];

test("required and named choices constrain the whole reply to the call's JSON", () => {
  const plan = toolPlan({ tools, tool_choice: "required" }, messages, invalid)!;
  assert.equal(plan.reply, "json");
  assert.equal(plan.grammar.kind, "json_schema");
  assert.match(plan.messages[0]!.content, /Reply with one call as JSON/);
  assert.equal(toolPlan({ tools, tool_choice: "none" }, messages, invalid), null);
});

test("auto lets the model write text or one tagged call (xgrammar triggered_tags)", () => {
  const plan = toolPlan({ tools, tool_choice: "auto" }, messages, invalid)!;
  assert.equal(plan.reply, "tagged");
  assert.equal(plan.grammar.kind, "structural_tag");
  const tag = JSON.parse((plan.grammar as { tag: string }).tag);
  assert.deepEqual(tag.format.triggers, [TOOL_CALL_BEGIN]);
  assert.equal(tag.format.tags[0].end, TOOL_CALL_END);
  assert.equal(tag.format.tags[0].content.json_schema.properties.name.const, "get_weather");
  assert.equal(tag.format.stop_after_first, true);
  assert.match(plan.messages[0]!.content, /otherwise answer in text/);
});

test("a tagged reply becomes content (text before the tag) and a call", () => {
  const call = '{"name": "get_weather", "arguments": {"city": "Paris"}}';
  const both = toolReply(`Let me check. ${TOOL_CALL_BEGIN}${call}${TOOL_CALL_END}`, "tagged");
  assert.equal(both.content, "Let me check.");
  assert.equal(both.call!.function.name, "get_weather");
  assert.equal(both.call!.function.arguments, '{"city":"Paris"}');
  assert.equal(toolReply(`${TOOL_CALL_BEGIN}${call}${TOOL_CALL_END}`, "tagged").content, null);
  assert.deepEqual(toolReply("It is sunny.", "tagged"), { content: "It is sunny.", call: null });
  // Cut by max_tokens inside the call: stays text.
  assert.equal(toolReply(`${TOOL_CALL_BEGIN}{"name": "get_`, "tagged").call, null);
  assert.equal(toolReply(call, "json").call!.function.name, "get_weather");
  assert.deepEqual(toolReply("plain", "none"), { content: "plain", call: null });
});
