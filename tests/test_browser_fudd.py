"""web/src/engine/fudd.ts against reference/ (Python), in Node: the same prompt file gives the same
parsed pairs and rejection reasons, and the same descriptions and embeddings give the same
re-ranking (identical order, scores within 1e-4).

Not yet covered (the worker/UI integration is still to do): FuDD through engine.classify in
Chromium, the IndexedDB description cache (a second run makes no LLM calls), offline.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_browser_chat import ENGINE, run_engine_script

from contract.manifest import VisionInfo
from reference.fudd import rerank
from reference.fudd_prompt import PROMPT_FILE, FuddPrompt

PROMPT = FuddPrompt.load()
OUTPUTS = [  # (a, b, LLM output): SmolLM2-135M outputs seen while tuning the prompt, and hand-made edge cases
    ("cat", "dog", "golden fur | black fur\nfur with a mix of brown and white | white fur"),
    ("blue square", "red circle", "blue square feature | red circle feature"),
    ("bicycle", "car", "black | white | red\nblack | white | red\nblack | white |"),
    ("apple", "orange", "yellow skin | green skin\noval with pointed ends | thin smooth peel"),
    ("owl", "parrot", "owls | parrots"),
    ("golden retriever", "labrador", "golden retriever with a black nose | labrador with a black nose"),
    ("cat", "dog", "Sure! Here are the lines:\r\n1. cat: pointy ears | dog: floppy ears.\n- with long whiskers | "
     "with a wet nose\n\n* small | small\n2) naïve façade | déjà vu\u2028narrow face | wide face\nextra | beyond n"),
    ("odd {b} label", "dog", "• x | y\n12. 42 | 43\n" + " ".join(["word"] * 11) + " | short"),
]


def test_prompt_and_parser_match_python():
    cases = [[a, b, text] for a, b, text in OUTPUTS]
    got = run_engine_script(f"""
import {{ FuddPrompt }} from "{ENGINE}/fudd.ts";
const prompt = new FuddPrompt({PROMPT_FILE.read_text()});
print({json.dumps(cases)}.map(([a, b, text]) => ({{
  messages: prompt.messages(a, b, 3), parsed: prompt.parse(text, a, b, 3),
  description: prompt.description("a photo of a {{}}.", a, "red fur"),
}})));
""")
    for (a, b, text), browser in zip(OUTPUTS, got):
        parsed = PROMPT.parse(text, a, b, 3)
        assert browser["messages"] == PROMPT.messages(a, b, 3)
        assert [tuple(p) for p in browser["parsed"]["pairs"]] == parsed.pairs, text
        assert [tuple(r) for r in browser["parsed"]["rejected"]] == parsed.rejected, text
        assert browser["description"] == PROMPT.description("a photo of a {}.", a, "red fur")
    # The cases really exercise both outcomes: only these two give usable pairs.
    assert [i for i, (a, b, t) in enumerate(OUTPUTS) if PROMPT.parse(t, a, b, 3).usable] == [0, 6]


@pytest.mark.parametrize("scoring, k", [("softmax", 4), ("sigmoid", 3), ("softmax", 1)])
def test_rerank_matches_python(scoring, k):
    rng = np.random.default_rng(7)
    labels = ["cat", "dog", "fox", "owl", "bee", "elk"]
    vocab = [f"text {i}" for i in range(12)]
    embeds = {t: rng.normal(size=16).astype(np.float32) for t in vocab + [f"a photo of a {c}." for c in labels]}
    pairs = {(a, b): ([vocab[(i * 3 + j) % 12], vocab[(i + j) % 12]], [vocab[(i * j + 5) % 12]])
             for i, a in enumerate(labels) for j, b in enumerate(labels) if a != b}
    image = rng.normal(size=16)
    image = (image / np.linalg.norm(image)).astype(np.float32)
    info = VisionInfo(scoring=scoring, logit_scale=30.0, logit_bias=-3.0 if scoring == "sigmoid" else 0.0,
                      template="a photo of a {}.", image_size=32, embed_dim=16, text_max_length=77,
                      pad_to_max_length=False, text_inputs=["input_ids"])
    first = rng.dirichlet(np.ones(len(labels)))

    def embed(texts):
        rows = np.stack([embeds[t] for t in texts]).astype(np.float64)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    want = rerank(image, labels, first, k, lambda a, b: pairs[(a, b)], embed, info)
    got = run_engine_script(f"""
import {{ rerank }} from "{ENGINE}/fudd.ts";
const embeds = {json.dumps({t: v.tolist() for t, v in embeds.items()})};
const pairs = new Map({json.dumps([[f"{a}|{b}", v] for (a, b), v in pairs.items()])});
const firstPass = {json.dumps([{"label": s.label, "score": s.score, "logit": 0} for s in want.first_pass])};
const result = await rerank(Float32Array.from({json.dumps(image.tolist())}), firstPass, {k},
  async (a, b) => pairs.get(a + "|" + b), async (texts) => texts.map((t) => Float32Array.from(embeds[t])),
  {info.model_dump_json()});
print(result);
""")
    assert [r["label"] for r in got["reranked"]] == [s.label for s in want.reranked]
    np.testing.assert_allclose([r["score"] for r in got["reranked"]], [s.score for s in want.reranked],
                               atol=1e-4, rtol=0)
    assert got["descriptions"] == want.descriptions
    assert len(want.reranked) == k


def test_reference_sampling_replays_the_browser_seed():
    """reference/sampling.py draws as web/src/engine/sampling.ts does: same stream, same tokens."""
    from reference.sampling import SeededRandom, sample_token

    logits = np.random.default_rng(3).normal(size=(6, 50)).astype(np.float32) * 3  # [steps, vocab]
    settings = [(0.0, 1.0), (0.7, 1.0), (1.0, 0.9), (1.3, 0.5)]
    got = run_engine_script(f"""
import {{ SeededRandom, sampleToken }} from "{ENGINE}/sampling.ts";
const stream = new SeededRandom(1234);
const logits = {json.dumps(logits.tolist())}.map((row) => Float32Array.from(row));
print({{
  stream: Array.from({{ length: 5 }}, () => stream.next()),
  tokens: {json.dumps(settings)}.map(([t, p]) => {{ const rng = new SeededRandom(42); return logits.map((l) => sampleToken(l, t, p, rng)); }}),
}});
""")
    stream = SeededRandom(1234)
    assert [stream.next() for _ in range(5)] == got["stream"]
    for (t, p), browser in zip(settings, got["tokens"]):
        rng = SeededRandom(42)
        assert [sample_token(row, t, p, rng) for row in logits] == browser, (t, p)
    assert len({tuple(b) for b in got["tokens"]}) > 1  # the settings really change the draws
