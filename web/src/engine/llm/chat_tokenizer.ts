// A chat model's tokenizer and chat template (tokenizer.json, tokenizer_config.json, chat_template.jinja).

import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import type { ChatMessage } from "./chat";
import { UnsupportedModelConfigError } from "../errors";

export type TokenizerConfig = Record<string, unknown> & { chat_template?: unknown };

function tokenString(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && "content" in value) return String((value as { content: unknown }).content);
  return undefined;
}

/**
 * The tokenizer and chat template of a chat model (tokenizer.json, tokenizer_config.json). A base model
 * exported without a chat template (e.g. Gemma 3 270M) gets plain completion: the last user message is
 * continued as text, with the tokenizer's own special tokens (BOS); the manifest note says so in the UI.
 */
export class ChatTokenizer {
  private readonly tokenizer: Tokenizer;
  private readonly template: Template | null;
  private readonly specials: Record<string, string>;

  constructor(tokenizerJson: object, config: TokenizerConfig, templateFile?: string) {
    this.tokenizer = new Tokenizer(tokenizerJson, config);
    const source = chatTemplateSource(config.chat_template) ?? templateFile;
    this.template = source ? new Template(source) : null;
    this.specials = {};
    for (const key of ["bos_token", "eos_token", "unk_token", "pad_token"]) {
      const text = tokenString(config[key]);
      if (text !== undefined) this.specials[key] = text;
    }
  }

  /** The prompt as the model was trained to see it: the assistant's turn opening, or plain text to continue. */
  promptIds(messages: ChatMessage[]): number[] {
    if (!this.template) {
      const last = [...messages].reverse().find((m) => m.role === "user");
      if (!last) throw new UnsupportedModelConfigError("plain completion needs a user message", "send a message");
      return this.tokenizer.encode(last.content, { add_special_tokens: true }).ids;
    }
    const text = this.template.render({ messages, add_generation_prompt: true, ...this.specials });
    // The template already wrote the special tokens; adding them again would double the BOS.
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /** Byte-level BPE decodes exactly, so no "clean-up" of spaces: streamed pieces join to the same text. */
  decode(ids: number[]): string {
    if (ids.length === 0) return ""; // the library rejects an empty list
    return this.tokenizer.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  }

  tokenText(id: number): string {
    return this.tokenizer.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }
}

/** tokenizer_config.json's chat_template: a string, or a list of named templates ("default" first). */
function chatTemplateSource(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value as Array<{ name?: string; template?: string }>;
    return (named.find((t) => t.name === "default") ?? named[0])?.template;
  }
  return undefined;
}
