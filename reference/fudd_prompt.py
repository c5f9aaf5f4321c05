"""The FuDD prompt and its strict parser, driven by contract/fudd_prompt.json (the browser reads the same file).

The LLM is asked for lines "feature of a | feature of b". A line counts only if it has exactly one
separator and both sides pass every rule (length, words, a letter, not just a label, the sides
differ, not copied from the example, not a repeat); everything else is rejected with a reason.
Output with no usable line is unusable: the caller falls back to the template and counts it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import contract

PROMPT_FILE = Path(contract.__file__).parent / "fudd_prompt.json"
_PLACEHOLDER = re.compile(r"\{(a|b|n|label|feature)\}")


def fill(text: str, values: dict[str, str]) -> str:
    """One pass over the placeholders, so a label containing "{b}" is not substituted again."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


# Rejections that concern the format rather than the content (see Parsed.format_failure).
FORMAT_CUT = "not valid JSON: cut by max_new_tokens"
FORMAT_SPLIT = "not one '{separator}' between two features"


@dataclass(frozen=True)
class Parsed:
    pairs: list[tuple[str, str]]  # (feature of a, feature of b), at most n
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (line, why)

    @property
    def usable(self) -> bool:
        return bool(self.pairs)

    @property
    def format_failure(self) -> bool:
        """Unusable because of the format alone: nothing in the answer had the asked-for shape."""
        format_reasons = (FORMAT_CUT, FORMAT_SPLIT.split("{")[0])
        return not self.pairs and all(why.startswith(format_reasons) for _, why in self.rejected)


class FuddPrompt:
    def __init__(self, data: dict) -> None:
        self.data = data
        rules = data["parse"]
        self.separator: str = rules["separator"]
        self.line_marker = re.compile(rules["line_marker"])
        self.trim_chars: str = rules["trim_chars"]
        self.leading_words: list[str] = sorted(rules["drop_leading_words"], key=len, reverse=True)
        self.min_chars, self.max_chars, self.max_words = rules["min_chars"], rules["max_chars"], rules["max_words"]
        self.needs_letter = re.compile(rules["needs_letter"])
        self.format_echoes: list[str] = rules["format_echoes"]
        self.max_new_tokens: int = data["generation"]["max_new_tokens"]
        self.structured_max_new_tokens: int = data["structured"]["max_new_tokens"]
        self.pairs_per_class_pair: int = data["pairs_per_class_pair"]
        self.attr_type: str = data["attr_type"]
        self.min_text_separation: float = data["separation"]["min_text"]
        # Lines of the worked example, in the parser's own normal form: a model that copies them said nothing.
        examples = [m["content"] for m in data["messages"] if m["role"] == "assistant"]
        self.example_sides = {
            side
            for text in examples
            for line in text.splitlines()
            if (split := self._split(line))
            for side in self._key(*split)
        }

    @classmethod
    def load(cls, path: Path = PROMPT_FILE) -> FuddPrompt:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def messages(self, a: str, b: str, n: int) -> list[dict[str, str]]:
        values = {"a": a, "b": b, "n": str(n)}
        return [{"role": m["role"], "content": fill(m["content"], values)} for m in self.data["messages"]]

    def structured_messages(self, a: str, b: str, n: int) -> list[dict[str, str]]:
        """The question for constrained decoding: answered in JSON (see `schema`)."""
        values = {"a": a, "b": b, "n": str(n)}
        return [{"role": m["role"], "content": fill(m["content"], values)} for m in self.data["structured"]["messages"]]

    def schema(self, a: str, b: str, n: int) -> str:
        """JSON Schema text of the answer: exactly n objects {a: feature, b: feature}, features of bounded length.
        Written as JavaScript's JSON.stringify writes it, so the browser compiles the same text."""
        rules = self.data["structured"]
        feature = {"type": "string", "minLength": rules["min_chars"], "maxLength": rules["max_chars"]}
        item = {
            "type": "object",
            "properties": {a: feature, b: feature},
            "required": [a, b],
            "additionalProperties": False,
        }
        schema = {"type": "array", "items": item, "minItems": n, "maxItems": n}
        return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)

    def parse_structured(self, text: str, a: str, b: str, n: int) -> Parsed:
        """A schema-constrained answer: its pairs judged by the same rules as lines "fa | fb"."""
        try:
            items = json.loads(text)
        except json.JSONDecodeError:
            return Parsed([], [(text, FORMAT_CUT)])
        lines = [f"{item[a]} {self.separator} {item[b]}" for item in items]
        return self.parse("\n".join(lines), a, b, n)

    def description(self, template: str, label: str, feature: str) -> str:
        """The text embedded for a feature: the model's template around "<label>, with <feature>"."""
        inner = fill(self.data["description"], {"label": label, "feature": feature})
        return template.replace("{}", inner) if "{}" in template else inner

    def parse(self, text: str, a: str, b: str, n: int) -> Parsed:
        pairs: list[tuple[str, str]] = []
        rejected: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        for line in (raw.strip() for raw in text.splitlines()):
            if not line:
                continue
            split = self._split(line)
            if split is None:
                rejected.append((line, FORMAT_SPLIT.format(separator=self.separator)))
                continue
            fa, fb = self._strip_label(split[0], a), self._strip_label(split[1], b)
            why = self._side_problem(fa, a, b) or self._side_problem(fb, a, b)
            key = self._key(fa, fb)
            echoes = {fill(e, {"a": a, "b": b}).lower() for e in self.format_echoes}
            if why is None and (fa.lower() in echoes or fb.lower() in echoes):
                why = "repeats the format instead of describing"
            if why is None and fa.lower() == fb.lower():
                why = "both sides say the same"
            if why is None and self._without_names(fa, a, b) == self._without_names(fb, a, b):
                why = "the sides differ only in the class names"
            if why is None and not self.example_sides.isdisjoint(key):
                why = "copied from the example"
            if why is None and key in seen:
                why = "repeated"
            if why is not None:
                rejected.append((line, why))
                continue
            seen.add(key)
            if len(pairs) < n:
                pairs.append((fa, fb))
        return Parsed(pairs, rejected)

    def _split(self, line: str) -> tuple[str, str] | None:
        parts = self.line_marker.sub("", line.strip(), count=1).split(self.separator)
        return (self._trim(parts[0]), self._trim(parts[1])) if len(parts) == 2 else None

    def _trim(self, side: str) -> str:
        side = side.strip(self.trim_chars)
        for word in self.leading_words:  # "with red fur" -> "red fur": the description adds "with"
            if side.lower().startswith(word.lower() + " "):
                return side[len(word) + 1 :].strip(self.trim_chars)
        return side

    def _strip_label(self, side: str, label: str) -> str:
        """ "cat: pointy ears" -> "pointy ears" (models often name the class first)."""
        if side.lower().startswith(label.lower() + ":"):
            return self._trim(side[len(label) + 1 :])
        return side

    def _side_problem(self, side: str, a: str, b: str) -> str | None:
        if not self.min_chars <= len(side) <= self.max_chars:
            return f"a feature must have {self.min_chars}-{self.max_chars} characters"
        if len(side.split()) > self.max_words:
            return f"a feature must have at most {self.max_words} words"
        if not self.needs_letter.search(side):
            return "a feature needs a letter"
        if side.lower() in (a.lower(), b.lower()):
            return "a class name is not a feature"
        return None

    @staticmethod
    def _without_names(side: str, a: str, b: str) -> str:
        """ "labrador with a black nose" -> "with a black nose"; "owls" -> "s"."""
        text = side.lower()
        for name in sorted((a.lower(), b.lower()), key=len, reverse=True):
            text = text.replace(name, " ")
        return " ".join(text.split())

    @staticmethod
    def _key(fa: str, fb: str) -> tuple[str, str]:
        return fa.lower(), fb.lower()
