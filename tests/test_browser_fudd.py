"""FuDD in the browser engine against reference/ (Python).

* In Node: web/src/engine/fudd/fudd.ts's prompt, parser and re-ranking against reference/fudd_prompt.py and
  reference/fudd.py (same pairs, rejection reasons, order, scores within 1e-4).
* In Chromium, tiny-random-clip (fp32): `engine.classify({..., fudd})` with GIVEN descriptions equals
  reference/fudd.py over the same ONNX files (identical order, scores within 1e-4, same fallbacks).
* In Chromium, with tiny-random-llama writing the descriptions: its answers are reference/llm.py's
  greedy tokens for the same prompt, fallbacks are counted as reference/descriptions.py counts them, and
  after a reload, offline, the same classify asks the LLM nothing (IndexedDB cache).
* The Classify tab's "Ask the LLM" toggle, clicked through, with the explorer; screenshot, no console errors.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from browser_support import ENGINE, data_url, fixed_images, fp32_compute_copy, png_bytes, run_engine_script, screenshot
from contract.manifest import VisionInfo
from reference.fudd import class_descriptions, rerank
from reference.fudd_prompt import PROMPT_FILE, FuddPrompt
from reference.fudd_separation import SeparationCheck, image_separation
from reference.vision import apply_template
from server_support import live_server

PROMPT = FuddPrompt.load()
OUTPUTS = [  # (a, b, LLM output): SmolLM2-135M outputs seen while tuning the prompt, and hand-made edge cases
    ("cat", "dog", "golden fur | black fur\nfur with a mix of brown and white | white fur"),
    ("blue square", "red circle", "blue square feature | red circle feature"),
    ("bicycle", "car", "black | white | red\nblack | white | red\nblack | white |"),
    ("apple", "orange", "yellow skin | green skin\noval with pointed ends | thin smooth peel"),
    ("owl", "parrot", "owls | parrots"),
    ("golden retriever", "labrador", "golden retriever with a black nose | labrador with a black nose"),
    (
        "cat",
        "dog",
        (
            "Sure! Here are the lines:\r\n1. cat: pointy ears | dog: floppy ears.\n- with long whiskers | "
            "with a wet nose\n\n* small | small\n2) naïve façade | déjà vu\u2028narrow face | wide face\nextra | beyond n"
        ),
    ),
    ("odd {b} label", "dog", "• x | y\n12. 42 | 43\n" + " ".join(["word"] * 11) + " | short"),
]


def test_prompt_and_parser_match_python():
    cases = [[a, b, text] for a, b, text in OUTPUTS]
    got = run_engine_script(f"""
import {{ FuddPrompt }} from "{ENGINE}/fudd/fudd.ts";
const prompt = new FuddPrompt({PROMPT_FILE.read_text()});
print({json.dumps(cases)}.map(([a, b, text]) => ({{
  messages: prompt.messages(a, b, 3), parsed: prompt.parse(text, a, b, 3),
  description: prompt.description("a photo of a {{}}.", a, "red fur"),
}})));
""")
    for (a, b, text), browser in zip(OUTPUTS, got, strict=True):
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
    pairs = {
        (a, b): ([vocab[(i * 3 + j) % 12], vocab[(i + j) % 12]], [vocab[(i * j + 5) % 12]])
        for i, a in enumerate(labels)
        for j, b in enumerate(labels)
        if a != b
    }
    image = rng.normal(size=16)
    image = (image / np.linalg.norm(image)).astype(np.float32)
    info = VisionInfo(
        scoring=scoring,
        logit_scale=30.0,
        logit_bias=-3.0 if scoring == "sigmoid" else 0.0,
        template="a photo of a {}.",
        image_size=32,
        embed_dim=16,
        text_max_length=77,
        pad_to_max_length=False,
        text_inputs=["input_ids"],
    )
    first = rng.dirichlet(np.ones(len(labels)))

    def embed(texts):
        rows = np.stack([embeds[t] for t in texts]).astype(np.float64)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    want = rerank(image, labels, first, k, lambda a, b: pairs[(a, b)], embed, info)
    got = run_engine_script(f"""
import {{ rerank }} from "{ENGINE}/fudd/fudd.ts";
const embeds = {json.dumps({t: v.tolist() for t, v in embeds.items()})};
const pairs = new Map({json.dumps([[f"{a}|{b}", v] for (a, b), v in pairs.items()])});
const firstPass = {json.dumps([{"label": s.label, "score": s.score, "logit": 0} for s in want.first_pass])};
const result = await rerank(Float32Array.from({json.dumps(image.tolist())}), firstPass, {k},
  async (a, b) => pairs.get(a + "|" + b), async (texts) => texts.map((t) => Float32Array.from(embeds[t])),
  {info.model_dump_json()});
print(result);
""")
    assert [r["label"] for r in got["reranked"]] == [s.label for s in want.reranked]
    np.testing.assert_allclose(
        [r["score"] for r in got["reranked"]], [s.score for s in want.reranked], atol=1e-4, rtol=0
    )
    assert got["descriptions"] == want.descriptions
    assert len(want.reranked) == k


def test_separation_check_matches_python():
    """separation.ts's text and image separations and its keep/drop choice equal reference/fudd_separation.py's."""
    rng = np.random.default_rng(11)
    texts = ["a photo of a cat.", "a photo of a dog."] + [f"feature {i}" for i in range(10)]
    table = {t: rng.normal(size=8) for t in texts}
    features = [(f"feature {i}", f"feature {i + 5}") for i in range(5)]
    descriptions = [(f"cat {i}", f"dog {i}") for i in range(5)]
    images = rng.normal(size=(3, 8))
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    da, db = (rng.normal(size=(1, 8)) for _ in range(2))
    da, db = da / np.linalg.norm(da), db / np.linalg.norm(db)

    def embed(batch):
        return np.stack([table[t] for t in batch])

    want = SeparationCheck(embed, PROMPT.min_text_separation)("cat", "dog", "a photo of a {}.", features, descriptions)
    unit_t = {t: v / np.linalg.norm(v) for t, v in table.items()}
    ta, tb = unit_t["a photo of a cat."], unit_t["a photo of a dog."]
    got = run_engine_script(f"""
import {{ imageSeparation, separationCheck }} from "{ENGINE}/fudd/separation.ts";
const table = {json.dumps({t: v.tolist() for t, v in table.items()})};
const f32 = (v) => Float32Array.from(v);
const check = separationCheck(async (texts) => texts.map((t) => f32(table[t])), "a photo of a {{}}.",
  {PROMPT.min_text_separation});
print({{
  checks: await check(["cat", "dog"], {json.dumps(features)}, {json.dumps(descriptions)}),
  image: imageSeparation({json.dumps(images.tolist())}.map(f32), f32({json.dumps(da[0].tolist())}),
    f32({json.dumps(db[0].tolist())}), f32({json.dumps(ta.tolist())}), f32({json.dumps(tb.tolist())})),
}});
""")
    assert [c["descriptions"] for c in got["checks"]] == [list(c.descriptions) for c in want]
    np.testing.assert_allclose([c["text"] for c in got["checks"]], [c.text for c in want], atol=1e-6, rtol=0)
    assert [c["kept"] for c in got["checks"]] == [c.kept for c in want]
    assert 0 < sum(c.kept for c in want) < len(want)  # the case really keeps some and drops some
    assert got["image"] == pytest.approx(float(image_separation(images, da, db, ta, tb)[0]), abs=1e-6)


def test_reference_sampling_replays_the_browser_seed():
    """reference/sampling.py draws as web/src/engine/llm/sampling.ts does: same stream, same tokens."""
    from reference.sampling import SeededRandom, sample_token

    logits = np.random.default_rng(3).normal(size=(6, 50)).astype(np.float32) * 3  # [steps, vocab]
    settings = [(0.0, 1.0), (0.7, 1.0), (1.0, 0.9), (1.3, 0.5)]
    got = run_engine_script(f"""
import {{ SeededRandom, sampleToken }} from "{ENGINE}/llm/sampling.ts";
const stream = new SeededRandom(1234);
const logits = {json.dumps(logits.tolist())}.map((row) => Float32Array.from(row));
print({{
  stream: Array.from({{ length: 5 }}, () => stream.next()),
  tokens: {json.dumps(settings)}.map(([t, p]) => {{ const rng = new SeededRandom(42); return logits.map((l) => sampleToken(l, t, p, rng)); }}),
}});
""")
    stream = SeededRandom(1234)
    assert [stream.next() for _ in range(5)] == got["stream"]
    for (t, p), browser in zip(settings, got["tokens"], strict=True):
        rng = SeededRandom(42)
        assert [sample_token(row, t, p, rng) for row in logits] == browser, (t, p)
    assert len({tuple(b) for b in got["tokens"]}) > 1  # the settings really change the draws


# ---------------------------------------------------------------- FuDD through the engine, in Chromium

CLIP = "tiny-random-clip"
LLM = "tiny-random-llama"
SCORE_TOL = 1e-4
IMAGES = fixed_images()
URLS = [data_url(png_bytes(img)) for img in IMAGES]
LABELS = ["cat", "dog", "fox", "owl", "bee", "elk"]
FEATURES = [
    "striped fur",
    "long ears",
    "a bushy tail",
    "big round eyes",
    "yellow wings",
    "antlers",
    "a wet nose",
    "black spots",
    "a short snout",
]


def given_pairs() -> list[dict]:
    """Fixed descriptions for most class pairs (full texts, as a FuDD pairwise file holds); pairs whose
    indices sum to a multiple of 5 have none, so they fall back to the template (dog/bee is among the
    pairs the test images need). Pairs are written in both label orders."""
    out = []
    for i, a in enumerate(LABELS):
        for j, b in enumerate(LABELS[i + 1 :], start=i + 1):
            if (i + j) % 5 == 0:
                continue
            n = 1 + (i * j) % 3
            pairs = [
                [
                    f"a photo of a {a}, with {FEATURES[(i + j + m) % 9]}.",
                    f"a photo of a {b}, with {FEATURES[(i * j + m) % 9]}.",
                ]
                for m in range(n)
            ]
            out.append(
                {"labels": [a, b], "pairs": pairs}
                if (i + j) % 2
                else {"labels": [b, a], "pairs": [[y, x] for x, y in pairs]}
            )
    return out


@pytest.fixture(scope="module")
def fudd_root(shared_artifacts):
    shared_artifacts.clip(CLIP)  # the same exports as the vision and chat tests: free when they ran first
    shared_artifacts.llm(LLM)
    return shared_artifacts.root


@pytest.fixture(scope="module")
def fudd_url(fudd_root, web_dist):
    with live_server(fudd_root, web_dist) as (host, port):
        yield f"http://{host}:{port}"


def open_app(page, url: str, query: str = "autoload=0") -> None:
    page.goto(f"{url}/?{query}")
    page.wait_for_function("window.lumenReady !== undefined")
    page.evaluate("window.lumenReady")


def load_models(page, chat: bool) -> None:
    page.evaluate(
        f"""async (chat) => {{
      await window.engine.load({{ clip: "{CLIP}" }}, {{ variant: "fp32", runtime: "wasm" }});
      if (chat) await window.engine.loadChat("{LLM}", {{ runtime: "wasm" }});
    }}""",
        chat,
    )


CLASSIFY_JS = """async ([urls, labels, fudd]) => {
  const progress = [];
  const result = await window.engine.classify({ images: urls, labels, fudd: { ...fudd, onProgress: (p) => progress.push(p) } });
  return { result, progress };
}"""


@pytest.mark.browser
def test_given_descriptions_rerank_as_python_does(fudd_root, fudd_url, page_and_log):
    from reference.descriptions import GivenDescriber
    from reference.vision import VisionModel

    page, log = page_and_log
    open_app(page, fudd_url)
    load_models(page, chat=False)
    k = 4
    given = given_pairs()
    out = page.evaluate(CLASSIFY_JS, [URLS, LABELS, {"k": k, "descriptions": given}])
    got, progress = out["result"], out["progress"]

    vision = VisionModel(fudd_root, CLIP, variant="fp32")
    info = vision.info
    pairs = {}
    for g in given:
        a, b = g["labels"]
        pairs[(a, b)] = [tuple(p) for p in g["pairs"]]
        pairs[(b, a)] = [(y, x) for x, y in g["pairs"]]
    describer = GivenDescriber(pairs, info.template)
    images = vision.embed_images(IMAGES)  # [N, D]
    first = vision.scores(images, vision.embed_texts([apply_template(info.template, c) for c in LABELS]))  # [N, C]
    want = [
        rerank(img, LABELS, s, k, describer, vision.embed_texts, info) for img, s in zip(images, first, strict=True)
    ]

    assert got["k"] == k and got["llm"] is None and got["llmCalls"] == 0
    for browser, ref in zip(got["images"], want, strict=True):
        assert [s["label"] for s in browser["firstPass"]] == [s.label for s in ref.first_pass]
        np.testing.assert_allclose(
            [s["score"] for s in browser["firstPass"]], [s.score for s in ref.first_pass], atol=SCORE_TOL, rtol=0
        )
        assert [s["label"] for s in browser["reranked"]] == [s.label for s in ref.reranked]
        np.testing.assert_allclose(
            [s["score"] for s in browser["reranked"]], [s.score for s in ref.reranked], atol=SCORE_TOL, rtol=0
        )
        assert browser["descriptions"] == ref.descriptions
        # The order is meaningful only where neighbours differ by more than the tolerance.
        scores = [s.score for s in ref.reranked]
        assert min(x - y for x, y in itertools.pairwise(scores)) > SCORE_TOL
    # Fallbacks: the same class pairs, counted the same way; some pairs really have descriptions.
    reports = {tuple(p["labels"]): p for p in got["pairs"]}
    assert set(reports) == set(describer.outcomes)
    assert {key for key, p in reports.items() if p["fallback"]} == {
        key for key, o in describer.outcomes.items() if o.fallback
    }
    assert got["fallbacks"] == describer.fallbacks and 0 < describer.fallbacks < len(reports)
    # The descriptions changed something: some image's candidates were reordered.
    assert any([s.label for s in r.reranked] != [s.label for s in r.first_pass[:k]] for r in want)
    assert [p["done"] for p in progress] == list(range(1, len(reports) + 1))
    assert {p["total"] for p in progress} == {len(reports)}

    # The explorer: given descriptions of one class ranked by mean cosine with the images, as Python computes it.
    # ("long ears" is left out: on this random model it ties "striped fur" within 6e-5.)
    texts = [f"a photo of a fox, with {f}." for f in FEATURES if f != "long ears"]
    explained = page.evaluate(
        "(args) => window.engine.explainClass(args)", {"label": "fox", "images": URLS, "descriptions": texts}
    )
    mean_cos = (vision.embed_texts(texts) @ images.T).mean(axis=1)  # [T]
    order = sorted(range(len(texts)), key=lambda i: -mean_cos[i])
    assert np.diff(mean_cos[order]).max() < -SCORE_TOL  # neighbours far enough apart for the order to mean something
    assert [d["text"] for d in explained["descriptions"]] == [texts[i] for i in order]
    np.testing.assert_allclose(
        [d["cosine"] for d in explained["descriptions"]], mean_cos[order], atol=SCORE_TOL, rtol=0
    )
    template_cos = (vision.embed_texts([apply_template(info.template, "fox")]) @ images.T).mean()
    assert explained["template"]["cosine"] == pytest.approx(float(template_cos), abs=SCORE_TOL)
    assert explained["llmCalls"] == 0 and explained["llm"] is None

    errors = page.evaluate(
        """async (urls) => {
      const name = (p) => p.then(() => "no error", (err) => `${err.name}|${err.fix ? "fix" : ""}`);
      const e = window.engine;
      return {
        noChat: await name(e.classify({ images: urls, labels: ["cat", "dog"], fudd: { k: 2 } })),
        badK: await name(e.classify({ images: urls, labels: ["cat", "dog"], fudd: { k: 0, descriptions: [] } })),
        badGiven: await name(e.classify({ images: urls, labels: ["cat", "dog"], fudd: { descriptions: [{ labels: ["cat"] }] } })),
        explainNothing: await name(e.explainClass({ label: "cat", images: urls })),
        badCheck: await name(e.classify({ images: urls, labels: ["cat", "dog"], fudd: { separationCheck: "yes", descriptions: [] } })),
        badExplainCheck: await name(e.explainClass({ label: "cat", images: urls, descriptions: ["x"], separationCheck: 1 })),
      };
    }""",
        URLS[:1],
    )
    assert errors == {
        "noChat": "ModelNotLoadedError|fix",
        "badK": "InvalidRequestError|",
        "badGiven": "InvalidRequestError|",
        "explainNothing": "InvalidRequestError|",
        "badCheck": "InvalidRequestError|",
        "badExplainCheck": "InvalidRequestError|",
    }
    log.assert_clean()


@pytest.mark.browser
def test_llm_descriptions_match_python_greedy_and_are_cached_offline(fudd_root, fudd_url, browser):
    from reference.descriptions import LlmDescriber
    from reference.llm import ChatLLM
    from reference.vision import VisionModel

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(240_000)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda err: errors.append(str(err)))
    try:
        open_app(page, fudd_url)
        load_models(page, chat=True)
        labels, k = LABELS[:5], 3
        first = page.evaluate(CLASSIFY_JS, [URLS[:2], labels, {"k": k}])["result"]
        page.reload()  # a new worker: what the second run knows comes from IndexedDB
        open_app(page, fudd_url)
        load_models(page, chat=True)
        context.set_offline(True)
        again = page.evaluate(CLASSIFY_JS, [URLS[:2], labels, {"k": k}])
        context.set_offline(False)
        screenshot(page, "fudd_llm_cached_offline")
    finally:
        context.close()

    pairs = first["pairs"]
    assert first["llm"] == LLM and first["cache"] == "indexeddb"
    # One answer per pair, two where the line answer had no well-formed line and the pair was asked again as JSON.
    retried = first["jsonRetries"]
    assert first["llmCalls"] == len(pairs) + retried and len(pairs) > 0 and first["cacheHits"] == 0
    # Second run, after a reload and offline: every pair from the cache, no LLM call, same answer.
    second = again["result"]
    assert second["llmCalls"] == 0 and second["cacheHits"] == len(pairs) + retried
    assert {p["source"] for p in second["pairs"]} == {"cache"} and {p["source"] for p in again["progress"]} == {"cache"}
    # (prefill counts exist only where the LLM was asked now)
    assert [{**p, "source": "llm"} for p in second["pairs"]] == [
        {k: v for k, v in p.items() if k != "prefill"} for p in pairs
    ]
    assert second["images"] == first["images"]

    # Each answer: reference/llm.py's greedy tokens for the same prompt (the browser's list ends with
    # the stop token when it stopped); asked again as JSON, parsed and fallen back as
    # reference/descriptions.py does (its JSON answer: Python xgrammar over Python onnxruntime).
    llm = ChatLLM(fudd_root, LLM)
    vision = VisionModel(fudd_root, CLIP, variant="fp32")
    check = SeparationCheck(vision.embed_texts, PROMPT.min_text_separation)
    describer = LlmDescriber(llm, PROMPT, vision.info.template, check=check)
    for report in pairs:
        a, b = report["labels"]
        want = llm.generate(PROMPT.messages(a, b, PROMPT.pairs_per_class_pair), PROMPT.max_new_tokens)
        tokens = report["tokenIds"]
        if tokens and tokens[-1] in llm.stop_ids:
            tokens = tokens[:-1]
        assert tokens == want.token_ids, (a, b)
        assert report["raw"] == want.text
        assert (a, b) == tuple(sorted((a, b)))
        first_texts, second_texts = describer(a, b)
        assert (report["first"], report["second"], report["fallback"]) == (
            first_texts,
            second_texts,
            describer.outcomes[(a, b)].fallback,
        )
        assert report.get("retried", {}).get("raw") == describer.outcomes[(a, b)].retried
        assert_same_checks(report, describer.outcomes[(a, b)].checks)
    assert first["fallbacks"] == describer.fallbacks and retried == describer.json_retries
    assert retried > 0  # the random model writes malformed lines: the JSON retry really ran, in both
    assert (first["separationFallbacks"], first["separationDrops"]) == (
        describer.separation_fallbacks,
        describer.separation_drops,
    )
    assert not errors, errors


def assert_same_checks(report: dict, want) -> None:
    """The browser's separation check of one class pair (report["checks"]) equals reference/fudd_separation.py's."""
    if want is None:
        assert "checks" not in report
        return
    got = report["checks"]
    assert [c["descriptions"] for c in got] == [list(c.descriptions) for c in want]
    np.testing.assert_allclose([c["text"] for c in got], [c.text for c in want], atol=SCORE_TOL, rtol=0)
    # The keep/drop choice is compared where the two sides are further from the threshold than the tolerance.
    for c, w in zip(got, want, strict=True):
        if abs(w.text - PROMPT.min_text_separation) > SCORE_TOL:
            assert c["kept"] == w.kept


@pytest.mark.browser
@pytest.mark.parametrize("structured", [False, True], ids=["lines", "json"])
def test_later_pairs_prefill_only_their_own_tokens(fudd_root, fudd_url, browser, structured):
    """FuDD's instructions are the same for every class pair: with KV reuse (prefix_cache.ts) the
    first pair prefills the whole prompt, every later pair only what follows the shared prefix."""
    from reference.llm import ChatLLM

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(240_000)
    try:
        open_app(page, fudd_url)
        load_models(page, chat=True)
        labels = LABELS[:4]
        stats = page.evaluate(CLASSIFY_JS, [URLS[:1], labels, {"k": 4, "structured": structured}])["result"]
    finally:
        context.close()

    llm = ChatLLM(fudd_root, LLM)
    n = PROMPT.pairs_per_class_pair
    build = PROMPT.structured_messages if structured else PROMPT.messages
    prompts = {tuple(p["labels"]): llm.prompt_ids(build(*p["labels"], n)) for p in stats["pairs"]}
    # The shared part of every pair's prompt: the fixed instructions, up to the first label.
    shared = min(
        next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        for a in prompts.values()
        for b in prompts.values()
        if a is not b
    )
    assert shared > 20  # the system message, the example exchange and "How do you tell a"
    asked = [p for p in stats["pairs"] if p["source"] == "llm"]
    assert len(asked) == len(stats["pairs"]) == 6
    cached = [p["prefill"]["cachedTokens"] for p in asked]
    assert all(p["prefill"]["promptTokens"] == len(prompts[tuple(p["labels"])]) for p in asked)
    assert sorted(cached)[0] == 0 and sum(c == 0 for c in cached) == 1  # only the first pair starts cold
    for p in asked:
        if p["prefill"]["cachedTokens"]:
            own = p["prefill"]["promptTokens"] - shared  # this pair's labels and what follows them
            assert shared <= p["prefill"]["cachedTokens"] < p["prefill"]["promptTokens"]
            assert p["prefill"]["promptTokens"] - p["prefill"]["cachedTokens"] <= own
    assert stats["prefillTokensSaved"] == sum(cached) >= 5 * shared
    assert stats["prefillTokens"] + stats["prefillTokensSaved"] == sum(p["prefill"]["promptTokens"] for p in asked)
    print(
        f"FuDD {'json' if structured else 'lines'}: {len(asked)} pairs, {stats['prefillTokens']} prompt tokens "
        f"prefilled, {stats['prefillTokensSaved']} reused (shared prefix {shared} tokens)"
    )


@pytest.mark.browser
def test_ask_the_llm_toggle_shows_both_rankings_and_the_explorer(fudd_url, page_and_log):
    page, log = page_and_log
    open_app(page, fudd_url, f"model={CLIP}&variant=fp32&runtime=wasm&chat={LLM}")
    page.wait_for_selector(f"body[data-model='{CLIP}']")
    labels, k = LABELS[:4], 3
    page.set_input_files(
        "#classify-files",
        files=[
            {"name": f"image{i}.png", "mimeType": "image/png", "buffer": png_bytes(img)}
            for i, img in enumerate(IMAGES[:2])
        ],
    )
    page.fill("#labels", "\n".join(labels))
    page.check("#fudd-toggle")
    page.fill("#fudd-k", str(k))
    # Every status line, to see the progress the user saw.
    page.evaluate("""() => {
      window.fuddStatus = [];
      const status = document.getElementById("fudd-status");
      new MutationObserver(() => window.fuddStatus.push(status.textContent)).observe(status, { childList: true });
    }""")
    page.click("#classify-run")
    page.wait_for_selector("#fudd-status[data-state='done']")

    cards = page.locator(".fudd-card")
    assert cards.count() == 2
    shown = [
        {
            p: cards.nth(i).locator(f"[data-pass='{p}'] .bar").evaluate_all("rows => rows.map((r) => r.dataset.label)")
            for p in ("first", "reranked")
        }
        for i in range(2)
    ]
    # What the page shows is what the engine computes (a second call: answered from the cache).
    direct = page.evaluate(CLASSIFY_JS, [URLS[:2], labels, {"k": k}])["result"]
    assert direct["llmCalls"] == 0
    assert shown == [
        {"first": [s["label"] for s in im["candidates"]], "reranked": [s["label"] for s in im["reranked"]]}
        for im in direct["images"]
    ]
    statuses = page.evaluate("window.fuddStatus")
    total = len(direct["pairs"])
    assert f"Writing descriptions: {total} / {total} class pairs" in " ".join(statuses), statuses
    assert page.locator("#fudd-status").inner_text().startswith(f"Re-ranked the top {k} with descriptions by {LLM}")
    assert page.locator(".fudd-pairs li").count() == total

    cards.nth(0).locator(".fudd-why summary").click()
    assert cards.nth(0).locator(".fudd-why h5").count() == k
    page.select_option("#fudd-explore-label", direct["images"][0]["reranked"][0]["label"])
    page.click("#fudd-explore-run")
    page.wait_for_selector("#fudd-explained li")
    screenshot(page, "fudd_ui_toggle")
    log.assert_clean()


@pytest.fixture(scope="module")
def smollm2_root(shared_artifacts):
    return shared_artifacts.llm("smollm2")  # shared with the chat and FuDD reference tests: same variants


@pytest.mark.browser
@pytest.mark.slow
def test_smollm2_writes_usable_descriptions_as_python_does(smollm2_root, fudd_url, page_and_log, tmp_path):
    """The real SmolLM2 (its WASM default file): browser answers are Python's greedy tokens, and some
    class pairs get usable descriptions that the browser parses and wraps as Python does."""
    from reference.descriptions import LlmDescriber
    from reference.llm import ChatLLM
    from reference.vision import VisionModel
    from runtime.onnx_decoder import OnnxDecoder

    root = smollm2_root
    page, log = page_and_log
    open_app(page, fudd_url)
    page.evaluate(
        f"""async () => {{
      await window.engine.load({{ clip: "{CLIP}" }}, {{ variant: "fp32", runtime: "wasm" }});
      await window.engine.loadChat("smollm2", {{ runtime: "wasm" }});
    }}"""
    )
    labels = ["cat", "dog", "horse"]
    got = page.evaluate(CLASSIFY_JS, [URLS[:1], labels, {"k": 3}])["result"]

    llm = ChatLLM(root, "smollm2")
    model_file = root / next(iter(llm.entry.variants[llm.variant].files.values()))
    llm.decoder = OnnxDecoder(fp32_compute_copy(model_file, tmp_path))  # WASM computes 4-bit weights in fp32
    vision = VisionModel(root, CLIP, variant="fp32")
    template = vision.info.template
    describer = LlmDescriber(
        llm, PROMPT, template, check=SeparationCheck(vision.embed_texts, PROMPT.min_text_separation)
    )
    assert len(got["pairs"]) == 3 and got["llmCalls"] == 3 + got["jsonRetries"]
    for report in got["pairs"]:
        a, b = report["labels"]
        want = llm.generate(PROMPT.messages(a, b, PROMPT.pairs_per_class_pair), PROMPT.max_new_tokens)
        tokens = report["tokenIds"][:-1] if report["tokenIds"][-1] in llm.stop_ids else report["tokenIds"]
        assert tokens == want.token_ids, (a, b, report["raw"], want.text)
        assert report["raw"] == want.text
        first_texts, second_texts = describer(a, b)
        assert (report["first"], report["second"], report["fallback"]) == (
            first_texts,
            second_texts,
            describer.outcomes[(a, b)].fallback,
        )
        outcome = describer.outcomes[(a, b)]
        assert report.get("retried", {}).get("raw") == outcome.retried
        assert outcome.parsed is not None and [tuple(f) for f in report["features"]] == outcome.parsed.pairs
        assert_same_checks(report, outcome.checks)
    assert got["fallbacks"] == describer.fallbacks and got["jsonRetries"] == describer.json_retries
    checked = [c for o in describer.outcomes.values() for c in o.checks or []]
    assert checked  # SmolLM2 writes usable lines for some pairs, and every one of them is checked
    candidates = [s["label"] for s in got["images"][0]["candidates"]]
    assert got["images"][0]["descriptions"] == class_descriptions(candidates, describer, template)

    # The explorer, from the cached answers: each description of "cat" with its separations from the
    # class it was written against, as reference/fudd_separation.py computes them.
    explained = page.evaluate(
        "(args) => window.engine.explainClass(args)", {"label": "cat", "images": URLS[:1], "against": ["dog", "horse"]}
    )
    answers = sum(1 + (describer.outcomes[("cat", o)].retried is not None) for o in ("dog", "horse"))
    assert explained["llmCalls"] == 0 and explained["cacheHits"] == answers
    images = vision.embed_images(IMAGES[:1])
    texts = sorted(_explorer_texts(explained, template))
    unit = dict(zip(texts, vision.embed_texts(texts), strict=True))
    for d in explained["descriptions"]:
        other = d["against"]
        outcome = describer.outcomes[("cat", other)]  # "cat" sorts first against both: descriptions[0] is its side
        check = next(c for c in outcome.checks or [] if c.descriptions[0] == d["text"])
        assert d["textSeparation"] == pytest.approx(check.text, abs=SCORE_TOL) and d["kept"] == check.kept
        partner = check.descriptions[1]
        want_image = image_separation(
            images,
            unit[d["text"]][None],
            unit[partner][None],
            unit[apply_template(template, "cat")],
            unit[apply_template(template, other)],
        )[0]
        assert d["imageSeparation"] == pytest.approx(float(want_image), abs=SCORE_TOL)
    assert len(explained["descriptions"]) == len(
        {c.descriptions[0] for o in ("dog", "horse") for c in describer.outcomes[("cat", o)].checks or []}
    )
    log.assert_clean()


def _explorer_texts(explained: dict, template: str) -> set[str]:
    """Every text the explorer's numbers rest on: the descriptions, their partners, the template prompts."""
    texts = {apply_template(template, c) for c in ("cat", "dog", "horse")}
    for pair in explained["pairs"]:
        texts |= {t for c in pair.get("checks", []) for t in c["descriptions"]}
    return texts
