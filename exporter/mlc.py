"""MLC / WebLLM artifacts for a Llama-family model: weights in tvmjs tensor-cache shards + chat config.

Entry points for exporter/llm_export.py:

    result = write_mlc(model, tokenizer_dir, generation_config, staging.path("mlc/q4f32_1/resolve/main"),
                       "q4f32_1", context_window=2048)
    numbers = verify_mlc(staging.path("mlc/q4f32_1/resolve/main"), model, prompts_token_ids)
    llm_info.mlc.append(result.build(model_id))

The folder holds what WebLLM fetches when pointed at `<id>/mlc/<quant>/` (it appends resolve/main/):
mlc-chat-config.json, tensor-cache.json, params_shard_N.bin, tokenizer.json. Parameter names, shapes
and packing are those of mlc-llm's Llama model (the compiled model library binds weights by name):
q,k,v fused into qkv_proj; gate,up into gate_up_proj; q4 weights as uint32 [out, in/8] codes plus
[out, in/32] scales (group quantization, symmetric, group 32 along the input axis).

Over 400 lines on purpose: packing, sharding, the chat config and the read-back check all follow the
one mlc-llm naming and layout above, and splitting them would scatter that one format over files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from contract.manifest import MlcBuild, MlcQuantization
from exporter.artifacts import write_text_atomic
from exporter.errors import UnsupportedArchitectureError, UnsupportedQuantizationError
from exporter.mlc_config import build_chat_config, read_tokenizer_json
from runtime.progress import bar, step

GROUP_SIZE = 32
CODES_PER_WORD = 8  # eight 4-bit codes per uint32, low nibble first
MAX_CODE = 7  # symmetric int4: codes 0..14 stand for -7..7
SHARD_CAP_BYTES = 32 << 20  # tvmjs default; a tensor larger than this gets a shard of its own
CACHE_NAME = "tensor-cache.json"
CHAT_CONFIG_NAME = "mlc-chat-config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class QuantSpec:
    name: str
    bits: int | None  # None: weights kept unquantized
    model_dtype: str  # dtype of scales, norms and activations in the compiled library


QUANTIZATIONS = {
    "q4f32_1": QuantSpec("q4f32_1", 4, "float32"),
    "q4f16_1": QuantSpec("q4f16_1", 4, "float16"),
    "q0f32": QuantSpec("q0f32", None, "float32"),
}


@dataclass(frozen=True)
class MlcResult:
    """What write_mlc wrote. Paths are relative to the model's root folder (the one holding mlc/)."""

    quantization: MlcQuantization
    rel_dir: str  # "mlc/<quant>": the folder WebLLM is pointed at
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    model_lib: str | None = None  # "mlc/<quant>/<quant>-webgpu.wasm" when compiled
    model_lib_status: str = ""
    requires_shader_f16: bool = False

    def build(self, model_id: str) -> MlcBuild:
        """The manifest's record of this build (logical paths '<id>/...')."""
        return MlcBuild(
            quantization=self.quantization,
            path=f"{model_id}/{self.rel_dir}",
            model_lib=f"{model_id}/{self.model_lib}" if self.model_lib else None,
            model_lib_status=self.model_lib_status,
            requires_shader_f16=self.requires_shader_f16,
        )


def write_mlc(
    model: Any,
    tokenizer_dir: Path,
    generation_config: dict[str, Any],
    out_dir: Path,
    quantization: str,
    context_window: int,
) -> MlcResult:
    """Writes the WebLLM folder for `model` (a torch LlamaForCausalLM, fp32) into `out_dir`.

    `out_dir` must be `<model root>/mlc/<quantization>/resolve/main`. `tokenizer_dir` holds
    tokenizer.json (and optionally tokenizer_config.json / chat_template.jinja); `generation_config`
    gives eos/bos ids and sampling defaults. Raises UnsupportedQuantizationError,
    UnsupportedArchitectureError or CorruptCheckpointError (all ExportError) on bad input.
    """
    spec = _quant_spec(quantization)
    out_dir = Path(out_dir)
    if out_dir.parts[-4:] != ("mlc", quantization, "resolve", "main"):
        raise ValueError(f"out_dir must end with mlc/{quantization}/resolve/main, got {out_dir}")
    root = out_dir.parents[3]
    config = model.config
    _check_llama(config, spec)
    tokenizer_json = read_tokenizer_json(Path(tokenizer_dir))
    out_dir.mkdir(parents=True, exist_ok=True)

    copied = _copy_tokenizer(Path(tokenizer_dir), out_dir)
    chat_config = build_chat_config(
        config,
        tokenizer_json,
        _chat_template(Path(tokenizer_dir)),
        generation_config,
        quantization,
        context_window,
        copied,
    )
    write_text_atomic(out_dir / CHAT_CONFIG_NAME, json.dumps(chat_config, indent=2) + "\n")

    plan = _param_plan(model, spec)
    shards = _write_tensor_cache(
        plan, out_dir, source_params=sum(p.numel() for p in model.parameters()), label=f"[mlc] {quantization} shards"
    )
    model_lib, status = _build_model_lib(out_dir, quantization)

    names = [CHAT_CONFIG_NAME, CACHE_NAME, *shards, *copied]
    files = [(out_dir / n).relative_to(root).as_posix() for n in names]
    if model_lib:
        files.append(model_lib)
    return MlcResult(
        quantization=cast(MlcQuantization, quantization),  # _quant_spec checked it
        rel_dir=f"mlc/{quantization}",
        files=files,
        bytes=sum((root / f).stat().st_size for f in files),
        model_lib=model_lib,
        model_lib_status=status,
        requires_shader_f16=spec.model_dtype == "float16",
    )


def verify_mlc(folder: Path, model: Any, prompts_token_ids: list[list[int]], new_tokens: int = 32) -> dict[str, Any]:
    """Fidelity of a written folder against the PyTorch source, read back by the independent reference.

    For each prompt, PyTorch greedily continues it by `new_tokens` tokens; both models are then fed the
    same sequence (teacher forcing). Reports the max |logit difference|, next-token agreement on the
    continuation (does the stored model's argmax pick PyTorch's token? `forced_agreement_reference` is
    PyTorch's own full-forward score, 1.0 but for near-ties), the mean NLL of PyTorch's
    tokens under each model (`nll` vs `nll_reference`, as exporter/llm_fidelity.py reports them), the
    NLL of the prompts' own next tokens (real text), and the relative RMS error of the stored weights.
    """
    import torch

    from exporter.llm_fidelity import mean_nll
    from exporter.mlc_reference import MlcReference

    reference = MlcReference(Path(folder))
    max_diff, agree, agree_reference, total = 0.0, 0, 0, 0
    nll: dict[str, list[float]] = {"nll": [], "nll_reference": [], "prompt_nll": [], "prompt_nll_reference": []}
    with (
        bar(len(prompts_token_ids), f"[mlc] verify {reference.quantization}", unit="prompt") as progress,
        torch.no_grad(),
    ):
        for prompt in prompts_token_ids:
            ids = torch.tensor([prompt])
            if new_tokens:
                ids = model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=new_tokens,
                    min_new_tokens=new_tokens,
                    do_sample=False,
                    pad_token_id=0,
                )
            sequence = ids[0].tolist()
            n = len(prompt)
            torch_logits = model(ids).logits[0].double().numpy()  # [T, V]
            mlc_logits = reference.logits(sequence)  # [T, V]
            max_diff = max(max_diff, float(np.abs(mlc_logits - torch_logits).max()))
            agree += int((mlc_logits[n - 1 : -1].argmax(-1) == np.array(sequence[n:])).sum())
            # PyTorch's full forward can itself differ from its KV-cache decode at near-ties
            agree_reference += int((torch_logits[n - 1 : -1].argmax(-1) == np.array(sequence[n:])).sum())
            total += len(sequence) - n
            for suffix, logits in (("", mlc_logits), ("_reference", torch_logits)):
                if new_tokens:
                    nll["nll" + suffix].append(mean_nll(logits[n - 1 : -1], sequence[n:]))
                if n > 1:
                    nll["prompt_nll" + suffix].append(mean_nll(logits[: n - 1], sequence[1:n]))
            progress.update(1)
    return {
        "quantization": reference.quantization,
        "prompts": len(prompts_token_ids),
        "new_tokens": new_tokens,
        "max_abs_logit_diff": max_diff,
        "forced_agreement": agree / total if total else None,
        "forced_agreement_reference": agree_reference / total if total else None,
        **{key: float(np.mean(values)) if values else None for key, values in nll.items()},
        "weight_rel_rmse": _weight_rel_rmse(reference.weights, model),
    }


def _weight_rel_rmse(stored: dict[str, np.ndarray], model: Any) -> float:
    """sqrt(sum (stored - source)^2 / sum source^2) over every weight, in the stored (fused) layout."""
    error = norm = 0.0
    for param in _param_plan(model, QUANTIZATIONS["q0f32"]):  # the source weights, fused as stored
        source = param.make().astype(np.float64)
        error += float(((stored[param.name].astype(np.float64) - source) ** 2).sum())
        norm += float((source**2).sum())
    return math.sqrt(error / norm)


def group_quantize(weight: np.ndarray, model_dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """W [out, in] -> (q_weight uint32 [out, in/8], q_scale model_dtype [out, in/32]).

    As mlc-llm's GroupQuantize: the weight is first cast to the model dtype; per group of 32 inputs,
    scale = max|w| / 7 and code = clip(round(w / scale) + 7, 0, 14), all in the model dtype.
    """
    out_features, in_features = weight.shape
    w = weight.astype(model_dtype).reshape(out_features, in_features // GROUP_SIZE, GROUP_SIZE)
    scale = np.abs(w).max(axis=-1, keepdims=True) / np.array(MAX_CODE, dtype=model_dtype)  # [out, groups, 1]
    safe = np.where(scale == 0, np.array(1, dtype=model_dtype), scale)  # all-zero group: codes stay at 7
    codes = np.clip(np.rint(w / safe) + MAX_CODE, 0, 2 * MAX_CODE).astype(np.uint32)
    codes = codes.reshape(out_features, in_features // CODES_PER_WORD, CODES_PER_WORD)
    shifts = np.arange(CODES_PER_WORD, dtype=np.uint32) * 4  # code j of a word sits at bits 4j..4j+3
    q_weight = np.bitwise_or.reduce(codes << shifts, axis=-1).astype(np.uint32)
    return q_weight, scale[..., 0]


# -- parameters -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Param:
    name: str
    shape: tuple[int, ...]
    dtype: str
    make: Callable[[], np.ndarray]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


def _quant_spec(quantization: str) -> QuantSpec:
    if quantization not in QUANTIZATIONS:
        raise UnsupportedQuantizationError(
            f"unknown MLC quantization {quantization!r}", fix=f"choose one of {', '.join(QUANTIZATIONS)}"
        )
    return QUANTIZATIONS[quantization]


def _check_llama(config: Any, spec: QuantSpec) -> None:
    """The compiled Llama library has no biases, SiLU only, plain RoPE: refuse anything else."""
    problems = []
    if getattr(config, "model_type", None) != "llama":
        problems.append(f"model_type is {getattr(config, 'model_type', None)!r}, not 'llama'")
    if getattr(config, "hidden_act", "silu") != "silu":
        problems.append(f"hidden_act is {config.hidden_act!r}")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        problems.append("linear layers have biases")
    if getattr(config, "rope_scaling", None):
        problems.append(f"rope_scaling {config.rope_scaling!r} is not supported")
    if problems:
        raise UnsupportedArchitectureError(
            "MLC export supports plain Llama models only: " + "; ".join(problems),
            fix="export a LlamaForCausalLM checkpoint (e.g. SmolLM2), or pass --no-mlc",
        )
    if spec.bits:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        widths = {
            "hidden_size": config.hidden_size,
            "intermediate_size": config.intermediate_size,
            "num_attention_heads * head_dim": config.num_attention_heads * head_dim,
        }
        bad = {k: v for k, v in widths.items() if v % GROUP_SIZE}
        if bad:
            raise UnsupportedQuantizationError(
                f"{spec.name} groups inputs by {GROUP_SIZE}, but {bad} is not a multiple of {GROUP_SIZE}",
                fix="use --mlc q0f32 for this model",
            )


def _param_plan(model: Any, spec: QuantSpec) -> list[_Param]:
    """mlc-llm Llama parameters in declaration order, each produced lazily from the torch state."""
    config = model.config
    state = model.state_dict()

    def weight(*names: str) -> Callable[[], np.ndarray]:
        # Fused projections: rows of q,k,v (or gate,up) stacked along the output axis. [out, in]
        return lambda: np.concatenate([state[n].detach().float().numpy() for n in names], axis=0)

    def linear(mlc_name: str, *hf_names: str) -> list[_Param]:
        out_features = sum(state[n].shape[0] for n in hf_names)
        in_features = state[hf_names[0]].shape[1]
        make = weight(*hf_names)
        if spec.bits is None:
            return [
                _Param(
                    f"{mlc_name}.weight",
                    (out_features, in_features),
                    spec.model_dtype,
                    lambda: make().astype(spec.model_dtype),
                )
            ]
        pair: dict[str, tuple[np.ndarray, np.ndarray]] = {}

        def q_weight() -> np.ndarray:  # the writer takes q_weight first, then q_scale: quantize once
            pair["q"] = group_quantize(make(), spec.model_dtype)
            return pair["q"][0]

        return [
            _Param(f"{mlc_name}.q_weight", (out_features, in_features // CODES_PER_WORD), "uint32", q_weight),
            _Param(
                f"{mlc_name}.q_scale",
                (out_features, in_features // GROUP_SIZE),
                spec.model_dtype,
                lambda: pair.pop("q")[1],
            ),
        ]

    def norm(name: str) -> _Param:
        return _Param(
            name,
            tuple(state[name].shape),
            spec.model_dtype,
            lambda: state[name].detach().float().numpy().astype(spec.model_dtype),
        )

    plan = linear("model.embed_tokens", "model.embed_tokens.weight")
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}"
        plan += linear(f"{p}.self_attn.qkv_proj", *(f"{p}.self_attn.{x}_proj.weight" for x in "qkv"))
        plan += linear(f"{p}.self_attn.o_proj", f"{p}.self_attn.o_proj.weight")
        plan += linear(f"{p}.mlp.gate_up_proj", f"{p}.mlp.gate_proj.weight", f"{p}.mlp.up_proj.weight")
        plan += linear(f"{p}.mlp.down_proj", f"{p}.mlp.down_proj.weight")
        plan += [norm(f"{p}.input_layernorm.weight"), norm(f"{p}.post_attention_layernorm.weight")]
    plan.append(norm("model.norm.weight"))
    if not config.tie_word_embeddings:
        plan += linear("lm_head", "lm_head.weight")
    return plan


# -- files ----------------------------------------------------------------------------------------


def _write_tensor_cache(plan: list[_Param], out_dir: Path, source_params: int, label: str) -> list[str]:
    """Packs `plan` into params_shard_N.bin files of at most ~32 MB and writes tensor-cache.json."""
    shards: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    buffer = bytearray()

    def flush() -> None:
        if not pending:
            return
        path = f"params_shard_{len(shards)}.bin"
        (out_dir / path).write_bytes(buffer)
        shards.append(
            {
                "dataPath": path,
                "format": "raw-shard",
                "nbytes": len(buffer),
                "records": list(pending),
                "md5sum": hashlib.md5(buffer).hexdigest(),
            }
        )
        pending.clear()
        buffer.clear()

    total = sum(p.nbytes for p in plan)
    with bar(total, label, unit="B") as progress:
        for param in plan:
            array = np.ascontiguousarray(param.make())
            if array.shape != param.shape or array.dtype != np.dtype(param.dtype):
                raise AssertionError(
                    f"{param.name}: made {array.dtype}{array.shape}, planned {param.dtype}{param.shape}"
                )
            data = array.tobytes()
            if buffer and len(buffer) + len(data) > SHARD_CAP_BYTES:
                flush()
            pending.append(
                {
                    "name": param.name,
                    "shape": list(param.shape),
                    "dtype": param.dtype,
                    "format": "raw",
                    "nbytes": len(data),
                    "byteOffset": len(buffer),
                }
            )
            buffer += data
            progress.update(len(data))
        flush()
    metadata = {"ParamSize": len(plan), "ParamBytes": float(total), "BitsPerParam": total * 8.0 / source_params}
    write_text_atomic(out_dir / CACHE_NAME, json.dumps({"metadata": metadata, "records": shards}, indent=2) + "\n")
    return [s["dataPath"] for s in shards]


def _copy_tokenizer(tokenizer_dir: Path, out_dir: Path) -> list[str]:
    copied = []
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copyfile(tokenizer_dir / name, out_dir / name)
            copied.append(name)
    return copied


def _chat_template(tokenizer_dir: Path) -> str | None:
    jinja = tokenizer_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config = tokenizer_dir / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        return template if isinstance(template, str) else None
    return None


def compile_command(quantization: str) -> list[str]:
    """`mlc_llm compile` for a folder, run from the model's root folder (paths relative to it)."""
    return [
        "mlc_llm",
        "compile",
        f"mlc/{quantization}/resolve/main/{CHAT_CONFIG_NAME}",
        "--device",
        "webgpu",
        "-o",
        f"mlc/{quantization}/{quantization}-webgpu.wasm",
    ]


def _build_model_lib(out_dir: Path, quantization: str) -> tuple[str | None, str]:
    """Compiles the WebGPU model library where mlc-llm is installed; otherwise says how to build it."""
    command = compile_command(quantization)
    how = f"build with: (cd <artifacts>/<model id> && {' '.join(command)})"
    if importlib.util.find_spec("mlc_llm") is None:
        return None, f"not built: mlc_llm is not installed; {how}"
    root = out_dir.parents[3]
    with step(f"[mlc] compile {quantization} model library (webgpu)"):
        proc = subprocess.run([sys.executable, "-m", *command], cwd=root, capture_output=True, text=True)
    lib = command[-1]
    if proc.returncode != 0 or not (root / lib).is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"not built: mlc_llm compile failed ({proc.returncode}: {tail[0]}); {how}"
    return lib, "built"
