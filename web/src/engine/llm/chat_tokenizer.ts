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

/** The tokenizer and chat template of a chat model (tokenizer.json, tokenizer_config.json). */
export class ChatTokenizer {
  private readonly tokenizer: Tokenizer;
  private readonly template: Template;
  private readonly specials: Record<string, string>;

  constructor(tokenizerJson: object, config: TokenizerConfig, templateFile?: string) {
    this.tokenizer = new Tokenizer(tokenizerJson, config);
    const source = chatTemplateSource(config.chat_template) ?? templateFile;
    if (!source) {
      throw new UnsupportedModelConfigError("the model has no chat template (tokenizer_config.json chat_template)",
        "re-export the model: the exporter writes the template into tokenizer_config.json");
    }
    this.template = new Template(source);
    this.specials = {};
    for (const key of ["bos_token", "eos_token", "unk_token", "pad_token"]) {
      const text = tokenString(config[key]);
      if (text !== undefined) this.specials[key] = text;
    }
  }

  /** The prompt as the model was trained to see it, ending with the assistant's turn opening. */
  promptIds(messages: ChatMessage[]): number[] {
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
