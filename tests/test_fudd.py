"""FuDD: the re-ranking algorithm on hand-computed cases, the strict prompt parser, the FuDD file
format, and `python -m reference.fudd_eval` on a generated data set (tiny-random CLIP + a
descriptions file, checked against PyTorch; and once with the real SmolLM2 writing descriptions).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from transformers import AutoImageProcessor, AutoTokenizer

from contract.manifest import VisionInfo
from reference.descriptions import GivenDescriber, LlmDescriber
from reference.errors import DescriptionsFileError
from reference.fudd import class_descriptions, class_embedding, rerank, top_k
from reference.fudd_pairs import dump_pairs, load_pairs
from reference.fudd_prompt import FuddPrompt
from reference.fudd_separation import SeparationCheck, image_separation, text_separation
from reference.llm import Generation

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = "a photo of a {}."
SOFTMAX = VisionInfo(
    scoring="softmax",
    logit_scale=10.0,
    logit_bias=0.0,
    template=TEMPLATE,
    image_size=32,
    embed_dim=2,
    text_max_length=77,
    pad_to_max_length=False,
    text_inputs=["input_ids"],
)
SIGMOID = SOFTMAX.model_copy(update={"scoring": "sigmoid", "logit_bias": -2.0})
PROMPT = FuddPrompt.load()


def unit(*v: float) -> np.ndarray:
    a = np.array(v, dtype=np.float64)
    return a / np.linalg.norm(a)


class FixedTexts:
    """A text embedder from a table (text -> 2-D vector); records what it was asked."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table, self.asked = table, []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.asked += texts
        return np.stack([unit(*self.table[t]) for t in texts])


def table_describer(table: dict[tuple[str, str], tuple[list[str], list[str]]]):
    calls = []

    def describe(a: str, b: str) -> tuple[list[str], list[str]]:
        calls.append((a, b))
        return table[(a, b)]

    return describe, calls


# ---------------------------------------------------------------- the algorithm


def test_class_embedding_is_the_unit_mean_of_unit_rows():
    rows = np.array([[3.0, 4.0], [2.0, 0.0]])  # unit rows: (0.6, 0.8), (1, 0); mean (0.8, 0.4)
    np.testing.assert_allclose(class_embedding(rows), [0.8 / np.sqrt(0.8), 0.4 / np.sqrt(0.8)], atol=1e-12)
    # Without normalizing the rows first, the long row would dominate: (2.5, 2) / |.| is a different vector.
    assert abs(class_embedding(rows)[0] - 2.5 / np.hypot(2.5, 2.0)) > 0.1


def test_descriptions_are_the_union_over_pairs_in_candidate_order():
    describe, calls = table_describer(
        {
            ("a", "b"): (["a1", "a2"], ["b1"]),
            ("a", "c"): (["a2", "a3"], ["c1"]),
            ("b", "c"): (["b1"], ["c2"]),
        }
    )
    got = class_descriptions(["a", "b", "c"], describe, TEMPLATE)
    assert got == {"a": ["a1", "a2", "a3"], "b": ["b1"], "c": ["c1", "c2"]}
    assert calls == [("a", "b"), ("a", "c"), ("b", "c")]
    assert class_descriptions(["a"], describe, TEMPLATE) == {"a": ["a photo of a a."]}  # K = 1: no pairs


def test_rerank_scores_only_the_top_k_and_descriptions_can_change_the_order():
    image = unit(1.0, 0.0)
    labels = ["cat", "dog", "fox", "owl"]
    first = np.array([0.5, 0.3, 0.15, 0.05])  # cat > dog > fox > owl
    describe, calls = table_describer(
        {
            ("cat", "dog"): (["cat-1"], ["dog-1"]),
            ("cat", "fox"): (["cat-2"], ["fox-1"]),
            ("dog", "fox"): (["dog-2"], ["fox-1"]),
        }
    )
    texts = FixedTexts(
        {"cat-1": (0.0, 1.0), "cat-2": (1.0, 1.0), "dog-1": (1.0, 0.2), "dog-2": (1.0, 0.0), "fox-1": (1.0, -1.0)}
    )
    result = rerank(image, labels, first, 3, describe, texts, SOFTMAX)

    assert [s.label for s in result.first_pass] == labels
    assert {s.label for s in result.reranked} == {"cat", "dog", "fox"}  # owl (4th) is not a candidate
    assert all("owl" not in pair for pair in calls)
    assert sorted(texts.asked) == ["cat-1", "cat-2", "dog-1", "dog-2", "fox-1"]  # each distinct text once
    # By hand: cat = unit(unit(0,1) + unit(1,1)) -> cos with (1,0) = 0.7071/1.8478 = 0.38268;
    # dog = unit(unit(1,.2) + (1,0)) = unit(1.98058, 0.19612) -> cos 0.995133; fox = unit(1,-1) -> cos 0.70711.
    cos = {"cat": 0.3826834, "dog": 0.9951333, "fox": 0.7071068}
    logits = np.array([10 * cos[c] for c in ("dog", "fox", "cat")])
    want = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert [s.label for s in result.reranked] == ["dog", "fox", "cat"]  # the first pass said cat
    np.testing.assert_allclose([s.score for s in result.reranked], want, atol=1e-6)
    assert result.descriptions == {"cat": ["cat-1", "cat-2"], "dog": ["dog-1", "dog-2"], "fox": ["fox-1"]}


def test_sigmoid_models_score_each_candidate_on_its_own():
    image = unit(1.0, 0.0)
    describe, _ = table_describer({("a", "b"): (["a-1"], ["b-1"])})
    texts = FixedTexts({"a-1": (1.0, 1.0), "b-1": (1.0, 0.0)})
    result = rerank(image, ["a", "b", "c"], np.array([0.9, 0.8, 0.1]), 2, describe, texts, SIGMOID)
    got = {s.label: s.score for s in result.reranked}
    assert got["b"] == pytest.approx(1 / (1 + np.exp(-(10 * 1.0 - 2))), abs=1e-9)
    assert got["a"] == pytest.approx(1 / (1 + np.exp(-(10 * np.sqrt(0.5) - 2))), abs=1e-9)


def test_top_k_keeps_first_pass_order_on_ties_and_caps_k():
    assert top_k(["x", "y", "z"], np.array([0.2, 0.4, 0.4]), 2) == ["y", "z"]
    assert top_k(["x", "y"], np.array([0.2, 0.4]), 10) == ["y", "x"]


# ---------------------------------------------------------------- prompt and parsing


def test_prompt_fills_labels_once_and_asks_for_n_lines():
    messages = PROMPT.messages("odd {b} label", "dog", 4)
    assert messages[-1]["role"] == "user"
    assert "odd {b} label" in messages[-1]["content"] and "Write 4 lines" in messages[-1]["content"]
    assert PROMPT.description(TEMPLATE, "cat", "pointy ears") == "a photo of a cat, with pointy ears."
    assert PROMPT.description("{}", "cat", "pointy ears") == "cat, with pointy ears"


def test_parse_good_output():
    parsed = PROMPT.parse(
        "pointy ears | floppy ears\nslim body | broad chest\nlong whiskers | wet nose\n", "cat", "dog", 3
    )
    assert parsed.pairs == [("pointy ears", "floppy ears"), ("slim body", "broad chest"), ("long whiskers", "wet nose")]
    assert parsed.rejected == []


def test_parse_messy_output_keeps_what_follows_the_rules_and_says_why_for_the_rest():
    text = """Sure! Here are the lines:
1. cat: pointy ears | dog: floppy ears.
- with long whiskers | with a wet nose
yellow skin | green skin
pointy ears | floppy ears
cat | dog
cat feature | dog feature
small | small
a | b | c
* slim body | a very long description that keeps going and going well past any sensible length limit
narrow face | wide face
extra line | beyond n"""
    parsed = PROMPT.parse(text, "cat", "dog", 3)
    assert parsed.pairs == [
        ("pointy ears", "floppy ears"),
        ("long whiskers", "a wet nose"),
        ("narrow face", "wide face"),
    ]
    reasons = dict(parsed.rejected)
    assert reasons["Sure! Here are the lines:"].startswith("not one '|'")
    assert reasons["yellow skin | green skin"] == "copied from the example"
    assert reasons["pointy ears | floppy ears"] == "repeated"
    assert reasons["cat | dog"] == "a class name is not a feature"
    assert reasons["cat feature | dog feature"] == "repeats the format instead of describing"
    assert reasons["small | small"] == "both sides say the same"
    assert reasons["a | b | c"].startswith("not one '|'")
    assert (
        "characters"
        in reasons[
            "* slim body | a very long description that keeps going and going well past any sensible length limit"
        ]
    )
    assert "extra line | beyond n" not in reasons  # valid, just more than asked for


class ScriptedLLM:
    model_id = "scripted"

    def __init__(self, replies: list[str]) -> None:
        self.replies, self.prompts = list(replies), []

    def generate(self, messages, max_new_tokens, **_) -> Generation:
        self.prompts.append(messages[-1]["content"])
        return Generation(self.replies.pop(0), [], "stop", 0)


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "The cat is a majestic creature with a beautiful coat.",
        "yellow skin | green skin\noval with pointed ends | small and round",
        "cat feature | dog feature",
    ],
)
def test_unusable_output_falls_back_to_the_template_and_is_counted(reply):
    llm = ScriptedLLM([reply, "pointy ears | floppy ears"])
    describer = LlmDescriber(llm, PROMPT, TEMPLATE, structured=False)  # type: ignore[arg-type]
    assert describer("dog", "cat") == (["a photo of a dog."], ["a photo of a cat."])
    assert describer("cat", "dog") == (["a photo of a cat."], ["a photo of a dog."])  # cached: one LLM call
    assert describer("cat", "fox") == (["a photo of a cat, with pointy ears."], ["a photo of a fox, with floppy ears."])
    assert (describer.llm_calls, describer.fallbacks, len(describer.outcomes)) == (2, 1, 2)
    assert llm.prompts[0].startswith("How do you tell a cat from a dog")  # labels in sorted order
    assert describer.described_pairs() == {
        ("cat", "fox"): [("a photo of a cat, with pointy ears.", "a photo of a fox, with floppy ears.")]
    }


def test_a_pair_with_no_well_formed_line_is_asked_again_as_json(monkeypatch):
    """The default: lines; only when no line has the format (not when content is rejected) the pair
    is asked again under the JSON schema, whose answer is then used."""
    asked_json: list[tuple[str, str]] = []

    def json_answer(self, a: str, b: str):
        asked_json.append((a, b))
        text = json.dumps([{a: "pointy ears", b: "floppy ears"}])
        return text, PROMPT.parse_structured(text, a, b, self.n)

    monkeypatch.setattr(LlmDescriber, "_json", json_answer)
    llm = ScriptedLLM(["Sure! Cats are lovely animals.", "cat feature | fox feature", "long tail | short tail"])
    describer = LlmDescriber(llm, PROMPT, TEMPLATE)  # type: ignore[arg-type]
    assert describer("cat", "dog") == (["a photo of a cat, with pointy ears."], ["a photo of a dog, with floppy ears."])
    retried = describer.outcomes[("cat", "dog")]
    assert retried.retried is not None and retried.raw == "Sure! Cats are lovely animals."
    assert describer("cat", "fox") == (["a photo of a cat."], ["a photo of a fox."])  # content rejected: no retry
    assert describer("cat", "owl")[0] == ["a photo of a cat, with long tail."]
    assert asked_json == [("cat", "dog")]
    assert (describer.llm_calls, describer.json_retries, describer.fallbacks, describer.format_fallbacks) == (
        4,
        1,
        1,
        0,
    )


# ---------------------------------------------------------------- the separation check (EX2-style)


def test_text_separation_is_how_far_each_feature_leans_to_its_own_class():
    ta, tb = unit(1, 0), unit(0, 1)
    toward = np.stack([unit(2, 1), unit(1, 2)])  # fa leans to a, fb leans to b
    # by hand: ½[(2 - 1) + (2 - 1)] / √5
    assert text_separation(ta, tb, toward[:1], toward[1:])[0] == pytest.approx(1 / np.sqrt(5))
    assert text_separation(ta, tb, toward[1:], toward[:1])[0] == pytest.approx(-1 / np.sqrt(5))  # swapped: wrong way
    same = np.stack([unit(1, 1)])
    assert text_separation(ta, tb, same, same)[0] == pytest.approx(0.0)  # one feature for both: no separation


def test_image_separation_is_the_margin_the_pair_adds_over_the_templates():
    ta, tb = unit(1, 0), unit(0, 1)
    images = np.stack([unit(3, 1), unit(1, 1)])
    da, db = np.stack([unit(3, 1)]), np.stack([unit(0, 1)])
    by_hand = np.mean([(x @ da[0] - x @ db[0]) - (x @ ta - x @ tb) for x in images])
    assert image_separation(images, da, db, ta, tb)[0] == pytest.approx(by_hand)
    assert image_separation(images, ta[None], tb[None], ta, tb)[0] == pytest.approx(0.0)  # the templates add nothing


def test_the_check_drops_feature_pairs_that_do_not_separate_and_falls_back_when_none_do():
    embed = FixedTexts(
        {
            "a photo of a cat.": (1, 0),
            "a photo of a dog.": (0, 1),
            "a photo of a fox.": (1, 1),
            "pointy ears": (3, 1),  # cat-like
            "floppy ears": (1, 3),  # dog-like
            "four legs": (1, 1),
            "a tail": (1, 1),
        }
    )
    check = SeparationCheck(embed, PROMPT.min_text_separation)
    llm = ScriptedLLM(["pointy ears | floppy ears\nfour legs | a tail", "floppy ears | pointy ears"])
    describer = LlmDescriber(llm, PROMPT, TEMPLATE, structured=False, check=check)  # type: ignore[arg-type]
    assert describer("cat", "dog") == (["a photo of a cat, with pointy ears."], ["a photo of a dog, with floppy ears."])
    checks = describer.outcomes[("cat", "dog")].checks
    assert checks is not None and [c.kept for c in checks] == [True, False]
    assert checks[0].text == pytest.approx(
        text_separation(unit(1, 0), unit(0, 1), unit(3, 1)[None], unit(1, 3)[None])[0]
    )
    # Each feature nearer the other class: nothing separates, the pair falls back and says why.
    assert describer("cat", "fox") == (["a photo of a cat."], ["a photo of a fox."])
    assert (describer.fallbacks, describer.separation_fallbacks, describer.separation_drops) == (1, 1, 2)
    assert describer.format_fallbacks == 0


# ---------------------------------------------------------------- FuDD's pairwise file format


def test_fudd_pairs_file_round_trips_and_orients_pairs(tmp_path):
    names = ["cat", "dog", "fox"]
    file = tmp_path / "pairs.json"
    file.write_text(
        json.dumps(
            {
                "0_2": {
                    "classes": [2, 0],
                    "prompt_pairs": [
                        {"attr_type": "color", "prompt_pair": ["a photo of a fox, orange.", "a photo of a cat, grey."]}
                    ],
                }
            }
        )
    )
    pairs = load_pairs(file, names)
    assert pairs[("fox", "cat")] == [("a photo of a fox, orange.", "a photo of a cat, grey.")]
    assert pairs[("cat", "fox")] == [("a photo of a cat, grey.", "a photo of a fox, orange.")]
    describer = GivenDescriber(pairs, TEMPLATE)
    assert describer("cat", "fox") == (["a photo of a cat, grey."], ["a photo of a fox, orange."])
    assert describer("cat", "dog") == (["a photo of a cat."], ["a photo of a dog."])  # not in the file
    assert describer.fallbacks == 1
    dumped = dump_pairs(pairs, names, "color")
    assert dumped == {
        "0_2": {
            "classes": [0, 2],
            "labels": ["cat", "fox"],
            "prompt_pairs": [
                {"attr_type": "color", "prompt_pair": ["a photo of a cat, grey.", "a photo of a fox, orange."]}
            ],
        }
    }
    file.write_text(json.dumps(dumped))
    assert load_pairs(file, names) == pairs


@pytest.mark.parametrize(
    "content, message",
    [
        ("[1, 2]", "top level"),
        ('{"0_1": {"classes": [0, 1]}}', "not a FuDD pair entry"),
        ('{"0_9": {"classes": [0, 9], "prompt_pairs": []}}', "not two of the 3 classes"),
        ('{"0_1": {"classes": [0, 1], "labels": ["dog", "cat"], "prompt_pairs": []}}', "labels"),
        ("{not json", "cannot read"),
    ],
)
def test_bad_descriptions_files_are_named_errors(tmp_path, content, message):
    file = tmp_path / "bad.json"
    file.write_text(content)
    with pytest.raises(DescriptionsFileError, match=message) as info:
        load_pairs(file, ["cat", "dog", "fox"])
    assert info.value.fix


# ---------------------------------------------------------------- the evaluation command

SHAPES = {
    "red_circle": ((220, 30, 30), "circle"),
    "green_square": ((30, 170, 60), "square"),
    "blue_triangle": ((40, 60, 220), "triangle"),
}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """3 classes x 4 images: colored shapes of varied size on a light background."""
    root = tmp_path_factory.mktemp("shapes")
    for name, (color, shape) in SHAPES.items():
        (root / name).mkdir()
        for i in range(4):
            img = Image.new("RGB", (48 + 9 * i, 40 + 5 * i), (235, 235, 235))
            draw = ImageDraw.Draw(img)
            x0, y0, x1, y1 = 5 + i, 4 + i, img.width - 6, img.height - 4
            if shape == "circle":
                draw.ellipse((x0, y0, x1, y1), fill=color)
            elif shape == "square":
                draw.rectangle((x0, y0, x1, y1), fill=color)
            else:
                draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) // 2, y0)], fill=color)
            img.save(root / name / f"{i}.png")
    return root


def run_eval(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reference.fudd_eval", *args], cwd=REPO, capture_output=True, text=True, timeout=1200
    )


def torch_predictions(root: Path, images: list[Path], labels: list[str], descriptions: dict, k: int):
    """Independent reference: the seeded PyTorch tiny CLIP, HF processor and tokenizer, FuDD written out again."""
    from exporter.tiny_random import build

    model = build("tiny-random-clip").eval()
    folder = root / "tiny-random-clip"
    processor = AutoImageProcessor.from_pretrained(folder, use_fast=False)
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def text(texts: list[str]) -> torch.Tensor:
        out = model.get_text_features(**tokenizer(texts, padding=True, return_tensors="pt"))
        return out / out.norm(dim=-1, keepdim=True)

    with torch.no_grad():
        pixels = processor(images=[Image.open(p).convert("RGB") for p in images], return_tensors="pt")["pixel_values"]
        img = model.get_image_features(pixel_values=pixels)
        img = img / img.norm(dim=-1, keepdim=True)  # [N, D]
        names = (img @ text(labels).T).argmax(1).tolist()
        template_cos = img @ text([TEMPLATE.format(c) for c in labels]).T  # [N, C]
        fudd = []
        for row, cos in zip(img, template_cos, strict=True):
            top = [int(i) for i in torch.argsort(-cos, stable=True)[:k]]
            per_class = []
            for c in top:
                texts = [
                    d
                    for o in top
                    if o != c
                    for d in descriptions.get((labels[c], labels[o]), [TEMPLATE.format(labels[c])])
                ]
                e = text(list(dict.fromkeys(texts))).mean(0)
                per_class.append(float(row @ (e / e.norm())))
            fudd.append(top[int(np.argmax(per_class))])
    return names, template_cos.argmax(1).tolist(), fudd


def test_eval_with_a_descriptions_file_matches_pytorch_and_says_the_model_is_untrained(
    shared_artifacts, shapes, tmp_path
):
    root = shared_artifacts.clip("tiny-random-clip")
    labels = sorted(n.replace("_", " ") for n in SHAPES)  # blue triangle, green square, red circle
    file = tmp_path / "shapes_prompt_pairs.json"  # pairs 0-1 and 1-2 described; 0-2 falls back to the template
    file.write_text(
        json.dumps(
            {
                "0_1": {
                    "classes": [0, 1],
                    "prompt_pairs": [
                        {
                            "attr_type": "color",
                            "prompt_pair": ["a photo of a blue triangle, blue.", "a photo of a green square, green."],
                        },
                        {
                            "attr_type": "shape",
                            "prompt_pair": ["a photo of a blue triangle, pointed.", "a photo of a green square, boxy."],
                        },
                    ],
                },
                "1_2": {
                    "classes": [1, 2],
                    "prompt_pairs": [
                        {
                            "attr_type": "shape",
                            "prompt_pair": [
                                "a photo of a green square, four corners.",
                                "a photo of a red circle, round.",
                            ],
                        }
                    ],
                },
            }
        )
    )
    report_file = tmp_path / "report.json"
    proc = run_eval(
        "--artifacts",
        str(root),
        "--clip",
        "tiny-random-clip",
        "--variant",
        "fp32",
        "--descriptions",
        str(file),
        "--data",
        str(shapes),
        "--k",
        "3",
        "--json",
        str(report_file),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "UNTRAINED" in proc.stdout and "mean NOTHING" in proc.stdout and "UNTRAINED" in proc.stderr
    for method in ("class name only", "template", "FuDD (K=3)"):
        assert method in proc.stdout
    assert "class pairs described: 3, template fallbacks: 1 (33%)" in proc.stdout

    report = json.loads(report_file.read_text())
    assert report["trained"] is False and report["classes"] == labels and report["fallbacks"] == 1
    pairs = load_pairs(file, labels)
    descriptions = {key: [a for a, _ in value] for key, value in pairs.items()}
    images = [p for name in sorted(SHAPES) for p in sorted((shapes / name).glob("*.png"))]
    targets = np.repeat(np.arange(3), 4)
    names, template, fudd = torch_predictions(root, images, labels, descriptions, k=3)
    for method, pred in (("class name only", names), ("template", template), ("FuDD (K=3)", fudd)):
        assert report["accuracy"][method]["correct"] == int((np.array(pred) == targets).sum()), method
    assert report["reranked_changed_top1"] == int((np.array(fudd) != np.array(template)).sum())
    assert report["reranked_changed_top1"] > 0  # the descriptions really moved predictions


def test_eval_bad_input_exits_2_with_a_named_error(shared_artifacts, shapes, tmp_path):
    root = shared_artifacts.clip("tiny-random-clip")
    (tmp_path / "only_one").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "only_one" / "x.png")
    proc = run_eval(
        "--artifacts", str(root), "--clip", "tiny-random-clip", "--descriptions", "nope.json", "--data", str(tmp_path)
    )
    assert proc.returncode == 2 and "needs at least 2" in proc.stderr and "fix:" in proc.stderr
    proc = run_eval(
        "--artifacts", str(root), "--clip", "no-such-model", "--descriptions", "x.json", "--data", str(shapes)
    )
    assert proc.returncode == 2 and "no vision model 'no-such-model'" in proc.stderr


def test_eval_never_imports_torch(shared_artifacts, shapes, tmp_path):
    """The command runs onnxruntime, `tokenizers` and the HF image processor (PIL + numpy): torch would
    only cost seconds and memory at start-up."""
    root = shared_artifacts.clip("tiny-random-clip")
    (tmp_path / "none.json").write_text("{}")
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "reference.fudd_eval",
            "--artifacts",
            str(root),
            "--clip",
            "tiny-random-clip",
            "--descriptions",
            str(tmp_path / "none.json"),
            "--data",
            str(shapes),
            "--k",
            "2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert {"onnxruntime", "transformers", "tokenizers"} <= imported  # the check sees the command's imports
    assert "torch" not in imported
    assert "None of PyTorch" not in proc.stderr


# ---------------------------------------------------------------- the real SmolLM2 writes descriptions


@pytest.fixture(scope="module")
def smollm2_root(shared_artifacts) -> Path:
    shared_artifacts.clip("tiny-random-clip")
    return shared_artifacts.llm("smollm2")  # shared with the chat tests: same variants


@pytest.mark.slow
def test_reference_llm_builds_the_prompt_as_transformers_does(smollm2_root):
    from reference.llm import ChatLLM

    llm = ChatLLM(smollm2_root, "smollm2")
    messages = PROMPT.messages("cat", "dog", 3)
    want = AutoTokenizer.from_pretrained(smollm2_root / "smollm2").apply_chat_template(
        messages, add_generation_prompt=True
    )
    assert llm.prompt_ids(messages) == list(want)
    assert 2 in llm.stop_ids  # <|im_end|>, from generation_config.json (the GGUF's converted eos says id 1)


@pytest.mark.slow
def test_eval_with_smollm2_writing_the_descriptions(smollm2_root, shapes, tmp_path):
    """3 class pairs, one greedy generation each; usable or not, every pair is accounted for."""
    saved, report_file = tmp_path / "written.json", tmp_path / "report.json"
    proc = run_eval(
        "--artifacts",
        str(smollm2_root),
        "--clip",
        "tiny-random-clip",
        "--llm",
        "smollm2",
        "--data",
        str(shapes),
        "--k",
        "3",
        "--save-descriptions",
        str(saved),
        "--json",
        str(report_file),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_file.read_text())
    assert report["descriptions"] == "LLM smollm2" and "UNTRAINED" in proc.stdout
    assert report["class_pairs"] == 3 and report["llm_calls"] == 3 + report["json_retries"]
    written = json.loads(saved.read_text())
    assert len(written) == 3 - report["fallbacks"]  # every pair either described or counted as a fallback
    for entry in written.values():  # what was kept follows the prompt's description form
        for pair in entry["prompt_pairs"]:
            for label, text in zip(entry["labels"], pair["prompt_pair"], strict=True):
                assert text.startswith(f"a photo of a {label}, with ")
    if report["fallbacks"] == 3:  # nothing usable: FuDD is the template pass restricted to the top 3
        assert report["reranked_changed_top1"] == 0
        assert report["accuracy"]["FuDD (K=3)"] == report["accuracy"]["template"]
