"""The speech engine's pure logic, in Node (the engine's own TypeScript bundled by rolldown):
the mixed-radix FFT against numpy, greedy decoding rules against runtime/whisper_decode.py on the
same logits, windows for long audio, overlap removal, and spoken labels."""

from __future__ import annotations

import json

import numpy as np

from browser_support import ENGINE, WEB, run_engine_script
from runtime.whisper_decode import DecodeRules, greedy


def test_fft_of_length_400_equals_numpy() -> None:
    x = np.random.default_rng(0).standard_normal(400)
    out = run_engine_script(f"""
import {{ Fft }} from "{ENGINE}/speech/fft.ts";
const x = Float64Array.from({json.dumps(x.tolist())});
const re = new Float64Array(400), im = new Float64Array(400);
new Fft(400).realForward(x, re, im);
print({{ re: Array.from(re), im: Array.from(im) }});
""")
    expected = np.fft.fft(x)
    assert np.abs(np.array(out["re"]) - expected.real).max() < 1e-9
    assert np.abs(np.array(out["im"]) - expected.imag).max() < 1e-9


def test_greedy_rules_equal_the_python_reference() -> None:
    """Same pseudo-random logits per step: same tokens, log-probs and no-speech probability."""
    vocab, steps = 64, 12
    table = np.random.default_rng(3).standard_normal((steps + 2, vocab)).astype(np.float32) * 3
    table[:, 60] += np.linspace(-6, 4, steps + 2, dtype=np.float32)  # <|endoftext|> gets likelier
    rules = DecodeRules(
        prompt=(50, 51), eot=60, no_speech=55, suppress=(1, 2, 3), begin_suppress=(4, 60), max_length=30
    )
    fed: list[int] = []

    def step(ids: list[int]) -> np.ndarray:
        rows = [table[min(len(fed) + i, steps + 1)] for i in range(len(ids))]
        fed.extend(ids)
        return np.stack(rows)

    expected = greedy(step, rules)
    got = run_engine_script(f"""
import {{ greedy }} from "{ENGINE}/speech/decode.ts";
const table = {json.dumps(table.tolist())};
let fed = 0;
const step = async (ids) => {{
  const rows = ids.map((_, i) => Float32Array.from(table[Math.min(fed + i, {steps + 1})]));
  fed += ids.length;
  return rows;
}};
const rules = {{ prompt: [50, 51], eot: 60, noSpeech: 55, suppress: [1, 2, 3], beginSuppress: [4, 60], maxLength: 30 }};
print(await greedy(step, rules));
""")
    assert got["tokens"] == expected.tokens
    assert np.allclose(got["logprobs"], expected.logprobs, atol=1e-6)
    assert abs(got["noSpeechProb"] - expected.no_speech_prob) < 1e-6


def test_windows_overlap_and_repeated_words_are_dropped() -> None:
    out = run_engine_script(f"""
import {{ planWindows, dropOverlap }} from "{ENGINE}/speech/chunks.ts";
import {{ spokenLabels }} from "{WEB}/src/ui/speech.ts";
print({{
  short: planWindows(100, 480, 80),
  long: planWindows(62 * 16000, 30 * 16000, 5 * 16000),
  exact: planWindows(480, 480, 80),
  dropped: dropOverlap("we walked to the old bridge", "The old bridge was closed."),
  none: dropOverlap("hello there", "general kenobi"),
  labels: spokenLabels("Dog, cat, horse and bird."),
}});
""")
    assert out["short"] == [{"start": 0, "end": 100}]
    assert out["exact"] == [{"start": 0, "end": 480}]
    assert [(w["start"] // 16000, w["end"] // 16000) for w in out["long"]] == [(0, 30), (25, 55), (50, 62)]
    assert out["dropped"] == "was closed."
    assert out["none"] == "general kenobi"
    assert out["labels"] == ["Dog", "cat", "horse", "bird"]
