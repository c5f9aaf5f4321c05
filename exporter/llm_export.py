"""`python -m exporter llm`: a Llama-family chat model -> ONNX decoder variants (KV cache) + MLC/WebLLM.

One load, one fp32 ONNX export, then per variant:
  q4    GGUF sources: the file's own blocks carried over exactly (exporter/gguf + llm_onnx.carry_blocks);
        fp32 sources: onnxruntime's 4-bit MatMulNBits quantizer (asymmetric, block 32)
  q8    every linear and the embedding re-quantized to ggml's Q8_0 (gguf-py), carried the same way
  int8  onnxruntime's dynamic int8 quantization
  fp32  the export itself
then onnxruntime's graph optimizer runs on it once (exporter/onnx_optimize.py: browsers then skip
most of it at every load). Each file is scored against the PyTorch model (llm_fidelity), and the manifest's per-runtime
default is the smallest file that meets the fidelity targets. Everything lands atomically through
ArtifactStore, with export-report.json holding every number.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from gguf import GGMLQuantizationType
from gguf import quants as ggml_quants

from contract.manifest import MODEL_ID_PATTERN, LlmInfo, ModelEntry
from exporter import llm_fidelity, peer_config
from exporter.artifacts import ArtifactStore, Staging
from exporter.errors import ArtifactStoreError, FidelityTargetsError, ParityError
from exporter.gguf.blocks import BlockWeight
from exporter.gguf.carry import carried_weights
from exporter.gguf.quants import unpack_blocks
from exporter.llm_onnx import ACCURACY_LEVEL, carry_blocks, export_decoder
from exporter.llm_sources import LoadedLlm, load_llm
from exporter.onnx_optimize import optimize_offline
from exporter.quantize import quantize_4bit, quantize_int8_dynamic
from runtime import onnx_decoder
from runtime.progress import Timer, step

# Our variant -> the Transformers.js dtype that loads it. Its `q8` (model_quantized.onnx) is what
# peers load by default on wasm, so it names our exact 8-bit file; dynamic int8 (which misses the
# fidelity targets) sits under `int8` (model_int8.onnx), loaded only when asked for by name.
PEER_DTYPE = {"fp32": "fp32", "q4": "q4", "q8": "q8", "int8": "int8"}
FILES = {variant: f"onnx/model{peer_config.SUFFIX[dtype]}.onnx" for variant, dtype in PEER_DTYPE.items()}
MLC_CONTEXT_WINDOW = 2048  # bounds the browser KV cache; the models themselves allow more
REPORT = "export-report.json"
CARRIED = "GGUF blocks carried over exactly"


def export_llm(source: str, out: Path, variants: list[str], mlc: list[str], model_id: str | None = None) -> ModelEntry:
    ArtifactStore(out).preflight()  # a read-only --out or a corrupt manifest fails before the load
    loaded = load_llm(source)
    model_id = model_id or _default_id(loaded)
    if not re.match(MODEL_ID_PATTERN, model_id):
        raise ArtifactStoreError(
            f"{model_id!r} cannot be a model id (letters, digits, '.', '_', '-', one '/')",
            fix="pass --id with a plain name, e.g. --id my-llm",
        )
    with ArtifactStore(out).stage(model_id) as staging, tempfile.TemporaryDirectory(prefix="lumen-llm-") as work:
        entry = _export_into(staging, Path(work), loaded, variants, mlc)
    print(f"exported {entry.id} ({', '.join(entry.variants)}; defaults {entry.defaults}) into {out}", file=sys.stderr)
    return entry


def _default_id(loaded: LoadedLlm) -> str:
    src = loaded.source
    if src.kind == "gguf" and src.spec != "smollm2":
        assert src.path is not None
        return re.sub(r"[^A-Za-z0-9_.-]", "-", src.path.stem)
    if src.kind == "tiny-random":
        return "tiny-random-llama"  # not "tiny-random": that names the CLIP test model
    return src.path.name if src.kind == "folder" and src.path else src.spec


def _export_into(staging: Staging, work: Path, loaded: LoadedLlm, variants: list[str], mlc: list[str]) -> ModelEntry:
    config = loaded.model.config
    generation = {
        "bos_token_id": loaded.bos_token_id,
        "eos_token_id": loaded.eos_token_ids,
        "pad_token_id": loaded.tokenizer.pad_token_id,
    }
    _write_model_files(staging, loaded, generation)
    timings: dict[str, float] = {}
    with step("[llm] PyTorch reference"), Timer() as t:
        refs = llm_fidelity.torch_reference(loaded.model, loaded.tokenizer)
    timings["reference_s"] = t.seconds
    with step("[llm] export fp32 decoder with KV cache"), Timer() as t:
        fp32 = export_decoder(loaded.model, work / "fp32")  # unties lm_head: same values
    timings["export_fp32_s"] = t.seconds

    built: dict[str, dict[str, Any]] = {}
    for variant in variants:
        dst = staging.path(FILES[variant])
        with step(f"[llm] build {variant}"), Timer() as t:
            how = _build_variant(variant, loaded, fp32, dst, work)
        with step(f"[llm] optimize the {variant} graph (once, not at every browser load)"), Timer() as t_opt:
            graph = optimize_offline(dst)
        with Timer() as t_eval:
            fidelity = llm_fidelity.evaluate(dst, refs, variant)
        built[variant] = {
            "file": FILES[variant],
            "bytes": _onnx_bytes(dst),
            "how": how,
            "build_s": t.seconds,
            "graph": graph,
            "optimize_s": t_opt.seconds,
            "evaluate_s": t_eval.seconds,
            **fidelity.as_dict(),
        }
        if how.startswith(CARRIED):  # same weights as PyTorch: missing the stricter targets is a bug, not noise
            built[variant]["meets_carried_targets"] = fidelity.meets_targets(carried=True)
        if how.startswith(CARRIED) and not fidelity.meets_targets(carried=True):
            raise ParityError(
                f"{variant} carries the GGUF blocks exactly yet misses the fidelity targets "
                f"(agreement >= {llm_fidelity.CARRIED_MIN_AGREEMENT}, NLL within "
                f"{llm_fidelity.CARRIED_MAX_NLL_REL:.0%}, {llm_fidelity.NEW_TOKENS} greedy tokens): {fidelity.as_dict()}",
                fix="report this export as a bug, with export-report numbers",
            )
    defaults, why = _choose_defaults(built, trained=loaded.trained)
    _write_config(staging, loaded, defaults)

    mlc_results: list[dict[str, Any]] = []
    mlc_builds = []
    if mlc and config.model_type != "llama":
        print(f"warning: no MLC/WebLLM files: the MLC writer supports llama, not {config.model_type}", file=sys.stderr)
        mlc_results.append({"skipped": f"the MLC writer supports llama, not {config.model_type}"})
        mlc = []
    if mlc:
        from exporter.mlc import verify_mlc, write_mlc  # the MLC/WebLLM engineer's module

        for quantization in mlc:
            folder = staging.path(f"mlc/{quantization}/resolve/main")
            with Timer() as t:
                result = write_mlc(loaded.model, staging.dir, generation, folder, quantization, MLC_CONTEXT_WINDOW)
                numbers = verify_mlc(folder, loaded.model, [r.prompt for r in refs], llm_fidelity.NEW_TOKENS)
            mlc_builds.append(result.build(staging.model_id))
            mlc_results.append(
                {
                    "quantization": quantization,
                    "bytes": result.bytes,
                    "seconds": t.seconds,
                    "model_lib_status": result.model_lib_status,
                    **numbers,
                }
            )

    info = LlmInfo(
        context_length=config.max_position_embeddings,
        num_layers=config.num_hidden_layers,
        num_kv_heads=config.num_key_value_heads,
        head_dim=getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads,
        vocab_size=config.vocab_size,
        eos_token_ids=loaded.eos_token_ids,
        bos_token_id=loaded.bos_token_id,
        mlc=mlc_builds,
    )
    report = {
        "model_id": staging.model_id,
        "source": loaded.source.spec,
        "architecture": loaded.architecture,
        "trained": loaded.trained,
        "threads": onnx_decoder.THREADS,
        "accuracy_level": ACCURACY_LEVEL,
        "prompts": list(llm_fidelity.PROMPTS),
        "new_tokens": llm_fidelity.NEW_TOKENS,
        "targets": {
            "forced_agreement_min": llm_fidelity.MIN_AGREEMENT,
            "nll_rel_diff_max": llm_fidelity.MAX_NLL_REL,
            "greedy_match_min": llm_fidelity.NEW_TOKENS,
            "carried_forced_agreement_min": llm_fidelity.CARRIED_MIN_AGREEMENT,
            "carried_nll_rel_diff_max": llm_fidelity.CARRIED_MAX_NLL_REL,
        },
        "reference": {
            "prompt_token_ids": [r.prompt for r in refs],
            "greedy_token_ids": [r.continuation for r in refs],
            "nll": [r.nll for r in refs],
        },
        "variants": built,
        "defaults": defaults,
        "defaults_reason": why,
        "mlc": mlc_results,
        "timings": timings,
        "llama_cpp": "not measured: llama_cpp (llama-cpp-python) is not importable here",
    }
    staging.path(REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    with step("[llm] commit"):
        return staging.commit(
            variants={v: {"dtype": v, "files": {"model": FILES[v]}, "note": built[v]["how"]} for v in built},
            report=REPORT,
            task="text-generation",
            family="llama",
            source=loaded.source.spec,
            trained=loaded.trained,
            note=_note(loaded),
            defaults=defaults,
            llm=info,
        )


COMPLETION_NOTE = "base model without a chat template: plain completion (your message is continued as text)"


def _note(loaded: LoadedLlm) -> str | None:
    if not loaded.trained:
        return "random weights for tests: the output is gibberish"
    return None if loaded.tokenizer.chat_template else COMPLETION_NOTE


def _write_model_files(staging: Staging, loaded: LoadedLlm, generation: dict[str, Any]) -> None:
    """generation_config.json, tokenizer.json and tokenizer_config.json (with the chat template:
    Transformers.js reads it there, not from chat_template.jinja)."""
    tokenizer = loaded.tokenizer
    tokenizer.save_pretrained(staging.dir)
    config_path = staging.path("tokenizer_config.json")
    tokenizer_config = json.loads(config_path.read_text(encoding="utf-8"))
    tokenizer_config["chat_template"] = tokenizer.chat_template
    config_path.write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (staging.dir / "chat_template.jinja").unlink(missing_ok=True)
    staging.path("generation_config.json").write_text(json.dumps(generation, indent=2) + "\n", encoding="utf-8")


def _write_config(staging: Staging, loaded: LoadedLlm, defaults: dict[str, str]) -> None:
    """config.json once the defaults are known: Transformers.js's default dtype loads our default file."""
    config = peer_config.clean_config(
        loaded.model.config.to_dict(), type(loaded.model).__name__, staging.model_id
    )  # a GGUF source leaves architectures null and a site-packages path in _name_or_path
    config.update(
        eos_token_id=loaded.eos_token_ids, bos_token_id=loaded.bos_token_id, tie_word_embeddings=False
    )  # the ONNX graph holds lm_head as its own weight
    config["transformers.js_config"] = peer_config.transformers_js_config(defaults, PEER_DTYPE)
    staging.path("config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _onnx_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def _build_variant(variant: str, loaded: LoadedLlm, fp32: Path, dst: Path, work: Path) -> str:
    """Writes one variant's file at dst; returns how it was made (for the manifest note and the report)."""
    if variant == "fp32":
        for part in fp32.parent.glob(fp32.name + "*"):  # model.onnx (+ model.onnx_data when large)
            shutil.copyfile(part, dst.parent / part.name.replace(fp32.name, dst.name))
        return "fp32 weights (GGUF sources: dequantized)"
    if variant == "int8":
        quantize_int8_dynamic(fp32, dst)
        return "onnxruntime quantize_dynamic int8"
    if variant == "q8":
        linears, embedding = _q8_0_weights(loaded)
        onnx.save(carry_blocks(onnx.load(fp32), linears, embedding, verify=False), dst)
        return "Q8_0 re-quantization (gguf-py) as two 4-bit MatMulNBits parts per weight"
    config = loaded.model.config
    if loaded.gguf is not None:
        carried = carried_weights(
            loaded.gguf, config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads
        )
        onnx.save(carry_blocks(onnx.load(fp32), carried.linears, carried.embedding), dst)
        embedding_type = carried.embedding.ggml_type if carried.embedding is not None else "fp32"
        return f"{CARRIED} ({', '.join(carried.types())}; embedding {embedding_type})"
    quantize_4bit(fp32, dst, block_size=32, symmetric=False, accuracy_level=ACCURACY_LEVEL)
    return "onnxruntime MatMulNBits 4-bit re-quantization (asymmetric, block 32; embedding fp32)"


def _q8_0_weights(loaded: LoadedLlm) -> tuple[dict[str, BlockWeight], BlockWeight]:
    """ggml Q8_0 (block 32, d = max|w| / 127) of every linear layer and the embedding (shared with lm_head)."""

    def q8_0(weight: np.ndarray) -> BlockWeight:
        raw = ggml_quants.quantize(np.ascontiguousarray(weight, dtype=np.float32), GGMLQuantizationType.Q8_0)
        return unpack_blocks(raw, "Q8_0", weight.shape)

    model = loaded.model
    embedding = q8_0(model.get_input_embeddings().weight.detach().numpy())
    linears = {"lm_head": embedding}  # the export's lm_head is a copy of the (tied) embedding
    if not np.array_equal(model.lm_head.weight.detach().numpy(), model.get_input_embeddings().weight.detach().numpy()):
        linears["lm_head"] = q8_0(model.lm_head.weight.detach().numpy())
    for name, module in model.named_modules():
        if name.startswith("model.layers.") and isinstance(module, torch.nn.Linear):
            linears[name] = q8_0(module.weight.detach().numpy())
    return linears, embedding


def _choose_defaults(built: dict[str, dict[str, Any]], trained: bool) -> tuple[dict[str, str], str]:
    """Per runtime: the smallest file meeting the fidelity targets (smaller also decodes faster where
    weight bandwidth bounds decoding). If none does, a trained model fails with the numbers (a Q5_0
    GGUF re-quantized to q4 reached agreement 0.68, NLL +75 %: not a default anyone should get);
    a random-weight test model takes the best forced agreement."""
    passing = [v for v, r in built.items() if r["meets_targets"]]
    if not passing and trained:
        numbers = "; ".join(
            f"{v}: forced agreement {r['forced_agreement']:.2f}, NLL {r['nll_rel_diff']:+.0%}" for v, r in built.items()
        )
        raise FidelityTargetsError(
            f"no variant meets the fidelity targets (forced agreement >= {llm_fidelity.MIN_AGREEMENT}, "
            f"|NLL change| <= {llm_fidelity.MAX_NLL_REL:.0%}): {numbers}; nothing was committed",
            fix="add q8 (--variants q4,q8: Q8_0 keeps the targets), or export from a Q4_0/Q4_1/Q8_0 GGUF or "
            "the original checkpoint, whose weights can be carried over",
        )
    if passing:
        best = min(passing, key=lambda v: built[v]["bytes"])
        why = (
            f"{best}: smallest file meeting the fidelity targets (passing: {', '.join(passing)}); "
            "native decode speed is informational, the browser engineer measures WASM/WebGPU"
        )
    else:
        best = max(built, key=lambda v: built[v]["forced_agreement"])
        why = f"{best}: no variant meets the fidelity targets; best forced agreement"
    return {"wasm": best, "webgpu": best}, why
