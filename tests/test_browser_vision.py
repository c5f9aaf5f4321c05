"""The in-browser engine against Python: the same artifact files, the same PNGs and texts.

Reference: reference.vision.VisionModel (fp32 variant): Python onnxruntime fed the Hugging Face
image processor's pixel_values (slow, PIL) and the `tokenizers` library's ids (tokenizer.json as
written, with its truncation/padding).
Tolerances: pixel_values 1e-6 (both sides do the same 8-bit PIL arithmetic), embeddings and
scores 1e-4 on WASM (fp32), 1e-3 on WebGPU (SwiftShader, different kernels). The int8 default on
WASM runs as downloaded, compared item by item with Python (1e-4); expanded on request, it is
compared with the same int8 files expanded to fp32 weights in Python (runtime/onnx_int8_expand.py,
written apart from the worker's onnx_int8_expand.ts): 1e-4 too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from browser_support import VISION_MODELS, data_url, fixed_images, png_bytes
from reference.vision import VisionModel, apply_template

WEB = Path(__file__).resolve().parent.parent / "web"


LABELS = ["cat", "dog", "red car", "a tree in winter", "Café au lait, naïve façade"]
LONG_TEXT = " ".join(["a very long caption that keeps going"] * 25)  # truncated at text_max_length
# (An empty text is refused with InvalidRequestError since the engine input checks: "!" is the shortest.)
TEXTS = ["a photo of a cat.", "!", LONG_TEXT, "two dogs playing in the snow at night"]
IMAGES = fixed_images()
URLS = [data_url(png_bytes(img)) for img in IMAGES]


def _run_in_browser(
    page, model_id: str, runtime: str, variant: str | None = "fp32", expand: bool | None = None
) -> dict:
    """Loads the variant (None: the manifest's default; `expand` as expandWeights) and returns pixel
    values, embeddings and classification."""
    return page.evaluate(
        """async ([modelId, runtime, urls, labels, texts, variant, expandWeights]) => {
          const engine = window.engine;
          const load = await engine.load({clip: modelId},
            {variant: variant ?? undefined, runtime, expandWeights: expandWeights ?? undefined});
          const pixels = await engine.pixelValues(urls);
          const images = await engine.embedImages(urls);
          const textEmbeds = await engine.embedTexts(texts);
          const classified = await engine.classify({images: urls, labels});
          return {
            load,
            runtime: engine.runtime,
            reason: engine.runtimeReason,
            pixels: pixels.map((p) => ({height: p.height, width: p.width, data: Array.from(p.data)})),
            images: images.map((e) => Array.from(e)),
            texts: textEmbeds.map((e) => Array.from(e)),
            classified,
          };
        }""",
        [model_id, runtime, URLS, LABELS, TEXTS, variant, expand],
    )


def _open(page, url: str) -> None:
    page.goto(f"{url}/?autoload=0")
    page.evaluate("window.lumenReady")


def _check_against_python(result: dict, ref: VisionModel, tol: float) -> None:
    family = ref.entry.family
    pixels = ref.pixel_values(IMAGES)
    for got, want in zip(result["pixels"], pixels, strict=True):
        assert (got["height"], got["width"]) == want.shape[1:]
        np.testing.assert_allclose(
            np.array(got["data"]).reshape(want.shape),
            want,
            atol=1e-6,
            rtol=0,
            err_msg=f"{family}: pixel_values differ from the HF processor",
        )
    image_ref = ref.embed_images(IMAGES)
    np.testing.assert_allclose(
        np.array(result["images"]), image_ref, atol=tol, rtol=0, err_msg=f"{family}: image embeddings"
    )
    np.testing.assert_allclose(
        np.array(result["texts"]), ref.embed_texts(TEXTS), atol=tol, rtol=0, err_msg=f"{family}: text embeddings"
    )
    info = ref.info
    label_ref = ref.embed_texts([apply_template(info.template, label) for label in LABELS])
    want_logits = info.logit_scale * image_ref @ label_ref.T + info.logit_bias  # [images, labels]
    want_scores = ref.scores(image_ref, label_ref)
    # The comparison means something only if the labels' logits differ by more than the tolerance
    # (tiny random ALIGN's texts embed close together: spread about 7e-4).
    assert (want_logits.max(axis=1) - want_logits.min(axis=1)).min() > min(tol, 1e-4) * 3
    for ranked, logits, scores in zip(result["classified"], want_logits, want_scores, strict=True):
        got = {r["label"]: r for r in ranked}
        assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True), "not best first"
        np.testing.assert_allclose(
            [got[label]["logit"] for label in LABELS], logits, atol=tol, rtol=0, err_msg=f"{family}: logits"
        )
        np.testing.assert_allclose(
            [got[label]["score"] for label in LABELS], scores, atol=tol, rtol=0, err_msg=f"{family}: scores"
        )


@pytest.mark.browser
@pytest.mark.parametrize("model_id", VISION_MODELS)
def test_wasm_matches_python_onnxruntime(model_id, vision_artifacts, lumen_url, page_and_log):
    page, log = page_and_log
    _open(page, lumen_url)
    result = _run_in_browser(page, model_id, "wasm")
    assert result["runtime"] == "wasm"
    assert result["load"]["clip"]["variant"] == "fp32"
    _check_against_python(result, VisionModel(vision_artifacts, model_id, variant="fp32"), tol=1e-4)
    # The images really needed resizing (and, for CLIP and ALIGN, cropping).
    assert all(img.size != (32, 32) and img.width != img.height for img in IMAGES)
    log.assert_clean()


@pytest.mark.browser
@pytest.mark.parametrize("model_id", VISION_MODELS)
def test_wasm_int8_expanded_when_asked(model_id, vision_artifacts, lumen_url, page_and_log):
    """int8 with `expandWeights: true` runs with fp32 weights expanded at load: it matches Python
    onnxruntime on the same files expanded the same way, and embeds in batches."""
    page, log = page_and_log
    _open(page, lumen_url)
    ref = VisionModel(vision_artifacts, model_id, runtime="wasm", expand=True)
    assert ref.variant == "int8" and ref.expanded
    result = _run_in_browser(page, model_id, "wasm", variant=None, expand=True)
    info = result["load"]["clip"]
    assert (info["variant"], info["dtype"]) == ("int8", "int8")
    expanded = info["expanded"]
    assert expanded["products"] > 0 and expanded["dynamicQuantizeLeft"] == 0, expanded
    # The cost in memory: every int8 weight becomes 4 bytes (tiny models: weights are most of the file).
    assert expanded["fileBytes"] < expanded["modelBytes"] < 4.5 * expanded["fileBytes"], expanded
    _check_against_python(result, ref, tol=1e-4)
    # Batch-independent now: one image alone embeds as it does among the batch.
    alone = page.evaluate("async (url) => Array.from((await window.engine.embedImages([url]))[0])", URLS[1])
    np.testing.assert_allclose(alone, result["images"][1], atol=1e-5, rtol=0)
    log.assert_clean()


@pytest.mark.browser
def test_wasm_q4_runs_expanded_weights(vision_artifacts, lumen_url, page_and_log):
    """q4 (MatMulNBits) is expanded on WASM too (runtime/onnx_dequant.ts); Python onnxruntime
    dequantizes the same blocks to fp32 before its GEMM, so the numbers agree as fp32 ones do."""
    page, log = page_and_log
    _open(page, lumen_url)
    result = _run_in_browser(page, "tiny-random-clip", "wasm", variant="q4")
    expanded = result["load"]["clip"]["expanded"]
    assert expanded["products"] > 0 and expanded["dynamicQuantizeLeft"] == 0, expanded
    _check_against_python(result, VisionModel(vision_artifacts, "tiny-random-clip", variant="q4", runtime="wasm"), 1e-4)
    log.assert_clean()


@pytest.mark.browser
def test_wasm_int8_default_runs_as_downloaded(vision_artifacts, lumen_url, page_and_log):
    """The WASM default (int8) runs its files as downloaded, as the manifest records (measured faster
    than expanded on WASM): one item per run (dynamic quantization scales each run's activations),
    so each embedding equals Python onnxruntime's on that item alone."""
    page, log = page_and_log
    _open(page, lumen_url)
    ref = VisionModel(vision_artifacts, "tiny-random-clip", runtime="wasm")
    assert ref.variant == "int8" and ref.entry.variants["int8"].expand_weights == [] and not ref.expanded
    result = _run_in_browser(page, "tiny-random-clip", "wasm", variant=None)
    assert result["load"]["clip"]["variant"] == "int8" and result["load"]["clip"]["expanded"] is None
    alone = np.stack([ref.embed_images([im])[0] for im in IMAGES])
    np.testing.assert_allclose(result["images"], alone, atol=1e-4, rtol=0)
    texts = np.stack([ref.embed_texts([t])[0] for t in TEXTS])
    np.testing.assert_allclose(result["texts"], texts, atol=1e-4, rtol=0)
    log.assert_clean()


@pytest.mark.browser
def test_webgpu_matches_wasm_and_badge_says_webgpu(vision_artifacts, lumen_url, webgpu_page_and_log):
    page, log = webgpu_page_and_log
    # A software adapter is used only when asked for: "auto" prefers WASM there (test_browser_bugs.py).
    page.goto(f"{lumen_url}/?model=tiny-random-clip&variant=fp32&runtime=webgpu")
    page.evaluate("window.lumenReady")
    badge = page.locator("#runtime-badge")
    assert badge.get_attribute("data-runtime") == "webgpu"
    assert "software adapter" in page.locator("#runtime-reason").text_content()
    result = _run_in_browser(page, "tiny-random-clip", "webgpu")
    assert result["runtime"] == "webgpu"
    _check_against_python(result, VisionModel(vision_artifacts, "tiny-random-clip", variant="fp32"), tol=1e-3)
    log.assert_clean()


@pytest.mark.browser
def test_named_errors(lumen_url, page_and_log):
    """Each failure reaches the caller as its own error class, with a fix."""
    page, log = page_and_log
    _open(page, lumen_url)
    page.route("**/models/tiny-random-siglip/onnx/**", lambda route: route.abort())
    errors = page.evaluate(
        """async () => {
          const e = window.engine;
          const name = (p) => p.then(() => "no error", (err) => `${err.name}|${err.fix ? "fix" : ""}`);
          return {
            notFound: await name(e.load({clip: "no-such-model"})),
            tooLarge: await name(e.load({clip: "tiny-random-clip"}, {maxBytes: 1000})),
            download: await name(e.load({clip: "tiny-random-siglip"}, {runtime: "wasm"})),
            notLoaded: await name(e.classify({images: [document.createElement("canvas").toDataURL()], labels: ["x"]})),
            badImage: await (async () => {
              await e.load({clip: "tiny-random-clip"}, {runtime: "wasm"});
              return name(e.embedImages(["data:image/png;base64," + btoa("this is not a png")]));
            })(),
            crossOrigin: await name(e.embedImages(["https://example.com/cat.png"])),
          };
        }"""
    )
    assert errors == {
        "notFound": "ModelNotFoundError|fix",
        "tooLarge": "ModelTooLargeError|fix",
        "download": "DownloadError|fix",
        "notLoaded": "ModelNotLoadedError|fix",
        "badImage": "UnsupportedImageError|fix",
        "crossOrigin": "UnsupportedImageError|fix",
    }
    # The aborted download is logged by the browser itself; nothing else may be.
    assert all("net::ERR_FAILED" in e or "Failed to load resource" in e for e in log.errors), log.errors


_RESIZE_CHECK = """
import { pilResize } from "./resample.js";
import { readFileSync } from "node:fs";
const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
const bad = [];
for (const c of cases) {
  const out = pilResize({ width: c.w, height: c.h, data: new Uint8Array(readFileSync(c.src)) }, c.ow, c.oh, c.filter);
  const want = new Uint8Array(readFileSync(c.want));
  if (want.some((v, i) => v !== out.data[i])) bad.push(c);
}
console.log(JSON.stringify(bad));
"""


def test_pil_resize_is_bit_exact_for_every_filter(tmp_path):
    """web/src/engine/vision/resample.ts (run by Node) against Pillow itself: every filter, up and down,
    both pass orders (Pillow runs the vertical pass first when the height shrinks much more)."""
    import json
    import subprocess

    from PIL import Image

    tsc = WEB / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        pytest.skip("web/node_modules is missing: run npm ci in web/")
    subprocess.run(
        [
            str(tsc),
            str(WEB / "src/engine/vision/resample.ts"),
            "--outDir",
            str(tmp_path),
            "--module",
            "es2022",
            "--target",
            "es2022",
            "--skipLibCheck",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "check.js").write_text(_RESIZE_CHECK)
    rng = np.random.default_rng(7)
    cases = []
    for i, (w, h, ow, oh) in enumerate(
        [
            (45, 70, 32, 32),
            (97, 61, 32, 32),
            (7, 9, 32, 61),
            (80, 20, 10, 3),
            (20, 80, 60, 10),
            (33, 29, 32, 32),
            (200, 131, 49, 32),
            (64, 64, 1, 1),
        ]
    ):
        image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for f in Image.Resampling:
            if f > Image.Resampling.HAMMING:
                continue  # Pillow 13's MKS filters are not used by any HF processor
            src, want = tmp_path / f"{i}.rgb", tmp_path / f"{i}-{int(f)}.rgb"
            src.write_bytes(np.asarray(image).tobytes())
            want.write_bytes(np.asarray(image.resize((ow, oh), f)).tobytes())
            cases.append({"w": w, "h": h, "ow": ow, "oh": oh, "filter": int(f), "src": str(src), "want": str(want)})
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    proc = subprocess.run(["node", "check.js", "cases.json"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [], "resample.ts differs from Pillow"
    assert len(cases) == 48
