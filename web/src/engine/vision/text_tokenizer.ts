// Text -> the text tower's int64 inputs, through @huggingface/tokenizers (tokenizer.json).
// Truncation and padding follow the manifest's VisionInfo: SigLIP pads every text to
// text_max_length (its tower reads no attention mask); the others pad to the longest in the batch.

import { Tokenizer } from "@huggingface/tokenizers";
import { UnsupportedModelConfigError } from "../errors";

export interface TextBatch {
  /** ONNX input name -> [batch, length] int64 */
  inputs: Record<string, { data: BigInt64Array; dims: [number, number] }>;
}

export interface TextTokenizerOptions {
  maxLength: number;
  padToMaxLength: boolean;
  inputNames: string[];
}

function tokenName(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && "content" in value) return String((value as { content: unknown }).content);
  return undefined;
}

export class TextTokenizer {
  private readonly tokenizer: Tokenizer;
  private readonly padId: number;

  constructor(tokenizerJson: object, tokenizerConfig: Record<string, unknown>, private readonly options: TextTokenizerOptions) {
    this.tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    const pad = tokenName(tokenizerConfig["pad_token"]) ?? tokenName(tokenizerConfig["eos_token"]);
    const padId = pad === undefined ? undefined : this.tokenizer.token_to_id(pad);
    if (padId === undefined) {
      throw new UnsupportedModelConfigError("tokenizer_config.json names no pad token that tokenizer.json knows",
        "re-export the model so its tokenizer_config.json sets pad_token");
    }
    this.padId = padId;
    for (const name of options.inputNames) {
      if (!["input_ids", "attention_mask", "token_type_ids"].includes(name)) {
        throw new UnsupportedModelConfigError(`text tower input ${name} is not supported`);
      }
    }
  }

  /** Token ids of one text with special tokens; over-long texts keep their final special token. */
  ids(text: string): number[] {
    const ids = this.tokenizer.encode(text).ids;
    const max = this.options.maxLength;
    return ids.length <= max ? ids : [...ids.slice(0, max - 1), ids[ids.length - 1]!];
  }

  encode(texts: string[]): TextBatch {
    const rows = texts.map((t) => this.ids(t));
    const length = this.options.padToMaxLength ? this.options.maxLength : Math.max(...rows.map((r) => r.length));
    const n = rows.length;
    const ids = new BigInt64Array(n * length).fill(BigInt(this.padId));
    const mask = new BigInt64Array(n * length);
    rows.forEach((row, i) => {
      row.forEach((id, j) => {
        ids[i * length + j] = BigInt(id);
        mask[i * length + j] = 1n;
      });
    });
    const dims: [number, number] = [n, length];
    const all: TextBatch["inputs"] = {
      input_ids: { data: ids, dims },
      attention_mask: { data: mask, dims },
      token_type_ids: { data: new BigInt64Array(n * length), dims },
    };
    const inputs: TextBatch["inputs"] = {};
    for (const name of this.options.inputNames) inputs[name] = all[name]!;
    return { inputs };
  }

  /** Without an attention mask, padding would change the result: such towers embed one text at a time. */
  get batchable(): boolean {
    return this.options.padToMaxLength || this.options.inputNames.includes("attention_mask");
  }
}
