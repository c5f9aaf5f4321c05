// Transformers.js's own pipelines in Node on an exported artifact folder, offline (tests/test_peers_transformers_js.py).
// Usage: node transformers_js.mjs LIBRARY_ENTRY < job.json > result.json
//   LIBRARY_ENTRY: bench/peer/node_modules/@huggingface/transformers/dist/transformers.node.mjs (the
//   benchmark's copy, 4.3.2: one install of the peer serves both).
// job: {root, model, dtypes: [dtype or null (the library's default: config.json's transformers.js_config)], task, ...};
// result: one entry per dtype, with `sessions` {name: {dtype, device}} as the library resolved them.
//   zero-shot-image-classification: images (file paths), labels, template -> scores [images][labels] in label order
//   text-generation: prompts (user messages), prompt_ids ([[int]]), new_tokens -> per prompt
//     pipeline_text (the pipeline's reply) and token_ids (greedy ids from the pipeline's model on prompt_ids)
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const { env, pipeline, Tensor } = await import(pathToFileURL(process.argv[2]).href);
const job = JSON.parse(readFileSync(0, "utf-8"));
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = job.root.endsWith("/") ? job.root : `${job.root}/`;
env.useFSCache = false;

async function zeroShot(options) {
  const classify = await pipeline("zero-shot-image-classification", job.model, options);
  const scores = [];
  for (const image of job.images) {
    const ranked = await classify(image, job.labels, { hypothesis_template: job.template });
    const byLabel = Object.fromEntries(ranked.map((r) => [r.label, r.score]));
    scores.push(job.labels.map((label) => byLabel[label]));
  }
  return { scores, sessions: sessions(classify.model) };
}

async function textGeneration(options) {
  const generate = await pipeline("text-generation", job.model, options);
  const pipeline_text = [];
  for (const prompt of job.prompts) {
    const out = await generate([{ role: "user", content: prompt }], { max_new_tokens: job.new_tokens, do_sample: false });
    pipeline_text.push(out[0].generated_text.at(-1).content);
  }
  const token_ids = [];
  for (const ids of job.prompt_ids) {
    const input_ids = new Tensor("int64", BigInt64Array.from(ids.map(BigInt)), [1, ids.length]);
    const attention_mask = new Tensor("int64", new BigInt64Array(ids.length).fill(1n), [1, ids.length]);
    const out = await generate.model.generate({ input_ids, attention_mask, max_new_tokens: job.new_tokens, do_sample: false });
    token_ids.push(Array.from(out.data, Number).slice(ids.length));
  }
  const plain = Array.from(generate.tokenizer(job.plain_text ?? "Hello world").input_ids.data, Number);
  return { pipeline_text, token_ids, plain_ids: plain, sessions: sessions(generate.model) };
}

/** The dtype (hence file suffix) and device the library chose for each session. */
function sessions(model) {
  return Object.fromEntries(Object.entries(model.sessions).map(([name, s]) => [name, s.config ?? null]));
}

const run = job.task === "text-generation" ? textGeneration : zeroShot;
const results = [];
for (const dtype of job.dtypes) results.push(await run(dtype ? { dtype } : {}));
process.stdout.write(JSON.stringify(results));
