"""llama.cpp (llama-cpp-python) on a GGUF, greedy: `python -m bench.llama_cpp ARGS_JSON` prints the
runs as JSON. Its own process: a llama.cpp build for the wrong CPU dies with SIGILL, and that
must cost one row, not the whole benchmark."""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def generate(llm, prompt: list[int], tokens: int) -> dict:
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    token = int(np.argmax(llm.scores[llm.n_tokens - 1]))  # the last position's logits
    t1 = time.perf_counter()
    for _ in range(tokens - 1):
        llm.eval([token])
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    t2 = time.perf_counter()
    return {
        "prefill_ms": (t1 - t0) * 1000,
        "decode_tokens_per_s": (tokens - 1) / (t2 - t1),
        "completion_tokens": tokens,
    }


def main() -> int:
    from llama_cpp import Llama

    args = json.loads(sys.argv[1])  # {gguf, threads, prompt, tokens, runs}
    llm = Llama(
        model_path=args["gguf"], n_ctx=512, n_threads=args["threads"], n_threads_batch=args["threads"], verbose=False
    )
    generate(llm, args["prompt"], args["tokens"])  # warm-up
    print(json.dumps([generate(llm, args["prompt"], args["tokens"]) for _ in range(args["runs"])]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
