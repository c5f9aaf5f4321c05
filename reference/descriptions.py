"""Where FuDD's differential descriptions come from: a FuDD pairwise JSON file or a local LLM.

Both describe each unordered class pair once (labels in sorted order: the cache key, and the
order the LLM sees them, as in the browser) and fall back to the template prompts for a pair they
have nothing usable for. Fallbacks are counted and reported, never hidden.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reference.fudd_pairs import Pairs
from reference.fudd_prompt import FuddPrompt, Parsed
from reference.fudd_separation import Checked, SeparationCheck
from reference.llm import ChatLLM
from reference.vision import apply_template

if TYPE_CHECKING:
    from reference.constrained import Grammars


@dataclass(frozen=True)
class PairOutcome:
    first: list[str]  # descriptions of the pair's first label (sorted order)
    second: list[str]
    fallback: bool  # True: the template prompts, because the source had nothing usable
    parsed: Parsed | None = None  # the LLM's output, parsed (None for a file)
    raw: str | None = None
    checks: list[Checked] | None = None  # each parsed feature pair, separation-checked (None: not checked)
    retried: str | None = None  # no line of `raw` had the format: the JSON answer asked next (`parsed` is its)


class Describer:
    """Callable (a, b) -> (descriptions of a, descriptions of b), memoized per unordered pair.

    The browser's Describer (web/src/engine/fudd/describer.ts) has the same parts under the same
    names: describe_pair/describePair -> PairOutcome, GivenDescriber, LlmDescriber."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.outcomes: dict[tuple[str, str], PairOutcome] = {}

    def __call__(self, a: str, b: str) -> tuple[list[str], list[str]]:
        key = (a, b) if a <= b else (b, a)
        if key not in self.outcomes:
            self.outcomes[key] = self.describe_pair(*key)
        outcome = self.outcomes[key]
        return (outcome.first, outcome.second) if key == (a, b) else (outcome.second, outcome.first)

    def describe_pair(self, a: str, b: str) -> PairOutcome:  # a < b
        raise NotImplementedError

    def fallback(
        self,
        a: str,
        b: str,
        parsed: Parsed | None = None,
        raw: str | None = None,
        checks: list[Checked] | None = None,
        retried: str | None = None,
    ) -> PairOutcome:
        return PairOutcome(
            [apply_template(self.template, a)], [apply_template(self.template, b)], True, parsed, raw, checks, retried
        )

    @property
    def fallbacks(self) -> int:
        return sum(o.fallback for o in self.outcomes.values())

    @property
    def json_retries(self) -> int:
        """Pairs whose line answer had no well-formed line, asked again as JSON."""
        return sum(o.retried is not None for o in self.outcomes.values())

    @property
    def separation_fallbacks(self) -> int:
        """Fallbacks because the separation check dropped every feature pair the answer had."""
        return sum(o.fallback and bool(o.checks) for o in self.outcomes.values())

    @property
    def separation_drops(self) -> int:
        """Feature pairs the separation check dropped, over every answer."""
        return sum(not c.kept for o in self.outcomes.values() for c in o.checks or [])

    @property
    def format_fallbacks(self) -> int:
        """Fallbacks because nothing in the answer had the asked-for shape (the rest: every feature was rejected)."""
        return sum(o.fallback and o.parsed is not None and o.parsed.format_failure for o in self.outcomes.values())

    def described_pairs(self) -> Pairs:
        """What the source really described (no fallbacks), as zipped description pairs."""
        return {key: list(zip(o.first, o.second, strict=True)) for key, o in self.outcomes.items() if not o.fallback}


class GivenDescriber(Describer):
    """Descriptions given by the user (a FuDD pairwise file here, the request's descriptions in the browser)."""

    def __init__(self, pairs: Pairs, template: str) -> None:
        super().__init__(template)
        self.pairs = pairs

    def describe_pair(self, a: str, b: str) -> PairOutcome:
        described = self.pairs.get((a, b))
        if not described:
            return self.fallback(a, b)
        return PairOutcome([x for x, _ in described], [y for _, y in described], False)


class LlmDescriber(Describer):
    """One greedy generation per class pair with the shared prompt, parsed strictly; with a
    SeparationCheck, only the feature pairs that separate the two classes are kept.

    `structured`: True asks for JSON under prompt.schema() (its format cannot fail); False for lines
    only; None (the browser's default) for lines, and again as JSON when no line has the format."""

    def __init__(
        self,
        llm: ChatLLM,
        prompt: FuddPrompt,
        template: str,
        pairs_per_class_pair: int | None = None,
        structured: bool | None = None,
        check: SeparationCheck | None = None,
    ) -> None:
        super().__init__(template)
        self.llm, self.prompt, self.check, self.structured = llm, prompt, check, structured
        self.n = pairs_per_class_pair or prompt.pairs_per_class_pair
        self.llm_calls = 0
        self.seconds = 0.0  # generating, in all
        self._grammars: Grammars | None = None  # built at the first JSON answer (xgrammar loads torch)

    def _lines(self, a: str, b: str) -> tuple[str, Parsed]:
        generated = self.llm.generate(self.prompt.messages(a, b, self.n), self.prompt.max_new_tokens)
        return generated.text, self.prompt.parse(generated.text, a, b, self.n)

    def _json(self, a: str, b: str) -> tuple[str, Parsed]:
        """Constrained decoding (reference/constrained.py): the answer follows prompt.schema() by construction."""
        from reference.constrained import constrained_greedy  # xgrammar loads torch: only when asked

        if self._grammars is None:
            self._grammars = structured_grammars(self.llm)
        spec = {"kind": "json_schema", "schema": self.prompt.schema(a, b, self.n)}
        messages = self.prompt.structured_messages(a, b, self.n)
        generated = constrained_greedy(self.llm, self._grammars, messages, spec, self.prompt.structured_max_new_tokens)
        return generated.text, self.prompt.parse_structured(generated.text, a, b, self.n)

    def describe_pair(self, a: str, b: str) -> PairOutcome:
        start = time.perf_counter()
        raw, parsed = self._json(a, b) if self.structured else self._lines(a, b)
        self.llm_calls += 1
        retried = None
        if self.structured is None and parsed.format_failure:
            retried, parsed = self._json(a, b)
            self.llm_calls += 1
        self.seconds += time.perf_counter() - start
        if not parsed.usable:
            return self.fallback(a, b, parsed=parsed, raw=raw, retried=retried)
        texts = [
            (self.prompt.description(self.template, a, fa), self.prompt.description(self.template, b, fb))
            for fa, fb in parsed.pairs
        ]
        checks = self.check(a, b, self.template, parsed.pairs, texts) if self.check else None
        kept = [c.descriptions for c in checks if c.kept] if checks is not None else texts
        if not kept:
            return self.fallback(a, b, parsed=parsed, raw=raw, checks=checks, retried=retried)
        return PairOutcome([x for x, _ in kept], [y for _, y in kept], False, parsed, raw, checks, retried)


def structured_grammars(llm: ChatLLM) -> Grammars:
    """The chat model's vocabulary and stop tokens as xgrammar sees them (as the browser builds them)."""
    from reference.constrained import Grammars, encoded_vocab  # xgrammar loads torch: only when asked

    vocab = encoded_vocab(llm.folder / "tokenizer.json", llm.entry.llm.vocab_size)  # type: ignore[union-attr]
    return Grammars(vocab, sorted(llm.stop_ids))
