"""`python -m bench --quick`: the whole benchmark end to end on tiny random models (one iteration).

Checks structure and sanity, not speed: every section ran, every engine that must have a number
has one (positive, min <= median <= max), ratios equal what the medians say, the three outputs
exist and agree, and bad input exits 2 with a message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, str]:
    out = tmp_path_factory.mktemp("bench")
    proc = run_bench("--quick", "--artifacts", str(out / "artifacts"), "--out", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / "bench.json").read_text()), out, proc.stdout


def _check_summary(s: dict) -> None:
    assert s["n"] == 1 and 0 < s["min"] <= s["median"] <= s["max"], s


@pytest.mark.browser
def test_quick_run_measures_every_engine(quick) -> None:
    results, out, stdout = quick
    assert set(results["sections"]) == {"llm", "clip", "load", "sizes", "server", "speech"}
    speech = results["sections"]["speech"]["rows"]
    assert {"ours_wasm_1t", "ours_wasm_2t", "native_ort_2t"} <= set(speech[0]["values"]), speech[0]
    assert speech[0]["metric"] == "real-time factor" and speech[-1]["missing"]  # no CTranslate2 twin for tiny-random
    llm = results["sections"]["llm"]["rows"]
    for row in llm[:2]:  # the default ONNX file: both browsers and native on it, and ours under a JSON schema
        assert {"ours_wasm_1t", "ours_wasm_2t", "transformers_js_2t", "native_ort_2t"} <= set(row["values"])
        assert {"ours_wasm_1t_json", "ours_wasm_2t_json"} <= set(row["values"]), row
        for threads in (1, 2):
            json_run, free = row["values"][f"ours_wasm_{threads}t_json"], row["values"][f"ours_wasm_{threads}t"]
            want = (
                json_run["median"] / free["median"] if row["higher_is_better"] else free["median"] / json_run["median"]
            )
            assert row["ratios"][f"constrained_vs_free_{threads}t"] == pytest.approx(want)
    clip = results["sections"]["clip"]["rows"]
    assert {r["metric"] for r in clip} == {
        "image, batch 1",
        "image, batch 8",
        "text, batch 1",
        "text, batch 8",
        "memory after the runs (JS + WASM)",
        "model bytes after fp32 expansion (both towers)",
    }
    # The default (int8) runs as downloaded on WASM: also expanded, and natively in the expanded form.
    default = [r for r in clip if r["file"].startswith("int8") and r["metric"] == "image, batch 8"]
    assert default and {"ours_wasm_2t_expanded", "native_ort_2t_expanded"} <= set(default[0]["values"])
    memory = [r for r in clip if r["file"].startswith("int8") and r["metric"].startswith(("memory", "model bytes"))]
    assert {"ours_wasm_1t", "ours_wasm_2t"} <= set(memory[0]["values"]), memory  # memory after the runs
    assert set(memory[1]["values"]) == {"ours_wasm_2t_expanded"}, memory  # only the expanded run has expanded bytes
    for row in llm + clip + speech + results["sections"]["load"]["rows"] + results["sections"]["server"]["rows"]:
        for summary in row["values"].values():
            _check_summary(summary)
        if "native_ort_2t" in row["values"]:
            ours, native = row["values"]["ours_wasm_2t"]["median"], row["values"]["native_ort_2t"]["median"]
            want = ours / native if row["higher_is_better"] else native / ours
            assert row["ratios"]["browser_vs_native"] == pytest.approx(want)
    assert any("pytorch_fp32" in r["values"] for r in llm) and any("pytorch_fp32" in r["values"] for r in clip)
    # llama.cpp has no GGUF for the tiny model: the row must say why instead of a number; so has wllama
    # (in the default file's rows, beside the ONNX engines), in the speed and the load section.
    assert all(isinstance(v, str) and v for r in llm for v in r["missing"].values())
    assert {"wllama_1t", "wllama_2t"} <= set(llm[0]["missing"]) and "GGUF" in llm[0]["missing"]["wllama_2t"]
    chat_load = [r for r in results["sections"]["load"]["rows"] if r["file"].startswith("first chat token")]
    metrics = [r["metric"] for r in chat_load]
    assert metrics[:3] == ["cold (download)", "warm (cached)", "peak memory (renderer RSS)"]
    assert "wllama_2t" in chat_load[0]["missing"] and chat_load[2]["values"]["ours_wasm_2t"]["median"] > 50
    # the engine's own load profile: where the warm load's time went
    session = chat_load[metrics.index("warm load step: session")]
    assert session["values"]["ours_wasm_2t"]["median"] < chat_load[1]["values"]["ours_wasm_2t"]["median"]
    assert "real_gpu" in results["webgpu"]
    assert (out / "bench.png").stat().st_size > 10_000 and (out / "bench.png").read_bytes()[:4] == b"\x89PNG"
    markdown = (out / "bench.md").read_text()
    assert "Transformers.js WASM 2t" in markdown and "browser ÷ native" in markdown
    assert "### Sizes" in stdout and "### Server" in stdout


@pytest.mark.browser
def test_sizes_match_the_files_on_disk(quick) -> None:
    results, out, _ = quick
    sizes = {(r["model"], r["variant"]): r for r in results["sections"]["sizes"]["rows"]}
    int8 = sizes[("tiny-random-clip", "int8")]
    onnx = out / "artifacts" / "tiny-random-clip" / "onnx"
    # The two towers and the combined model (the peers' zero-shot pipeline loads model_quantized.onnx).
    on_disk = sum(
        (onnx / f"{graph}_quantized.onnx").stat().st_size for graph in ("vision_model", "text_model", "model")
    )
    assert int8["variant_bytes"] == on_disk and int8["total_bytes"] > on_disk


@pytest.mark.parametrize("args", [["--only", "llm,gpu"], ["--runs", "0"], ["--only", ""]])
def test_bad_options_exit_2(args: list[str]) -> None:
    proc = run_bench(*args, timeout=60)
    assert proc.returncode == 2 and "error" in proc.stderr.lower(), proc.stderr


def test_wllama_ratios_pair_thread_counts() -> None:
    """ours ÷ wllama per thread count both ran at, as speed (decode: higher is better)."""
    from bench.rows import LLM_METRICS, metric_rows

    def s(x: float) -> dict:
        return {"n": 1, "median": x, "min": x, "max": x}

    engines: dict[str, dict | str] = {
        "ours_wasm_1t": {"decode_tok_s": s(30.0), "prefill_ms": s(100.0)},
        "ours_wasm_2t": {"decode_tok_s": s(36.0), "prefill_ms": s(80.0)},
        "wllama_1t": {"decode_tok_s": s(15.0), "prefill_ms": s(50.0)},
        "wllama_2t": "failed: no COOP/COEP",
    }
    prefill, decode = metric_rows("llm", "m", "f", engines, LLM_METRICS, 2)
    assert decode["ratios"]["ours_vs_wllama_1t"] == pytest.approx(2.0)
    assert prefill["ratios"]["ours_vs_wllama_1t"] == pytest.approx(0.5)  # lower is better: wllama 2x faster
    assert "ours_vs_wllama_2t" not in decode["ratios"] and decode["missing"]["wllama_2t"].startswith("failed")


def test_peak_memory_is_the_processes_high_water_mark() -> None:
    import os

    from bench.memory import peak_mb

    status = Path(f"/proc/{os.getpid()}/status").read_text()
    hwm_kb = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
    assert peak_mb({os.getpid()}) == pytest.approx(hwm_kb * 1024 / 1e6, rel=0.05)
    assert peak_mb({2**22 + 12345}) is None  # no such process: no number, not zero
