"""MLC/WebLLM writer (exporter/mlc.py) checked by the independent reader (exporter/mlc_reference.py),
by tvm's own tensor-cache reader where apache-tvm is installed, and by decoding here bit by bit.

Everything runs on a tiny random Llama (hidden 64, 2 layers, 4 heads, 2 kv heads, vocab 320).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM

from contract.manifest import load_manifest
from exporter.errors import CorruptCheckpointError, UnsupportedArchitectureError, UnsupportedQuantizationError
from exporter.mlc import MlcResult, compile_command, verify_mlc, write_mlc
from exporter.mlc_reference import MlcReference, read_tensor_cache

QUANTS = ("q0f32", "q4f32_1", "q4f16_1")
GENERATION_CONFIG = {"eos_token_id": 1, "bos_token_id": 1, "temperature": 0.2, "top_p": 0.9}  # eos as GGUF says
PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [40, 50, 60, 70]]


def make_tokenizer(folder: Path, specials: tuple[str, ...] = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")) -> Path:
    """A byte-level BPE tokenizer.json (no merges) with SmolLM2's special tokens at ids 0, 1, 2."""
    vocab = {token: i for i, token in enumerate(specials)}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(list(specials))
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "chat_template.jinja").write_text(
        "{{ '<|im_start|>system\nYou are a tiny test model<|im_end|>\n' }}{% for m in messages %}...{% endfor %}"
    )
    return folder


def make_model(tied: bool, hidden: int = 64) -> LlamaForCausalLM:
    torch.manual_seed(0 if tied else 1)
    config = LlamaConfig(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=320,
        rope_theta=100000.0,
        tie_word_embeddings=tied,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # weights large enough that logits spread, norms around 1
        for p in model.parameters():
            p.normal_(1.0 if p.dim() == 1 else 0.0, 0.1 if p.dim() == 1 else 0.3)
    return model


def folder_of(root: Path, quant: str) -> Path:
    return root / "mlc" / quant / "resolve" / "main"


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied"])
def exported(request, tmp_path_factory, tokenizer_dir) -> tuple[LlamaForCausalLM, Path, dict[str, MlcResult]]:
    """One tiny model written in all three quantizations: (model, root, quant -> result)."""
    model = make_model(tied=request.param)
    root = tmp_path_factory.mktemp("model")
    results = {q: write_mlc(model, tokenizer_dir, GENERATION_CONFIG, folder_of(root, q), q, 256) for q in QUANTS}
    return model, root, results


def expected_params(config: LlamaConfig, quant: str) -> dict[str, tuple[str, list[int]]]:
    """name -> (dtype, shape) that mlc-llm's Llama model declares, written out from the config here."""
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    d = h // config.num_attention_heads
    qkv = (config.num_attention_heads + 2 * config.num_key_value_heads) * d
    dtype = "float16" if quant == "q4f16_1" else "float32"

    def linear(name: str, out_features: int, in_features: int) -> dict[str, tuple[str, list[int]]]:
        if quant == "q0f32":
            return {f"{name}.weight": (dtype, [out_features, in_features])}
        return {
            f"{name}.q_weight": ("uint32", [out_features, in_features // 8]),
            f"{name}.q_scale": (dtype, [out_features, in_features // 32]),
        }

    params = linear("model.embed_tokens", v, h)
    for n in range(config.num_hidden_layers):
        p = f"model.layers.{n}"
        params |= linear(f"{p}.self_attn.qkv_proj", qkv, h) | linear(f"{p}.self_attn.o_proj", h, h)
        params |= linear(f"{p}.mlp.gate_up_proj", 2 * i, h) | linear(f"{p}.mlp.down_proj", h, i)
        params[f"{p}.input_layernorm.weight"] = (dtype, [h])
        params[f"{p}.post_attention_layernorm.weight"] = (dtype, [h])
    params["model.norm.weight"] = (dtype, [h])
    if not config.tie_word_embeddings:
        params |= linear("lm_head", v, h)
    return params


def unpack_codes(q_weight: np.ndarray) -> np.ndarray:
    """Bit-by-bit decode, written out plainly: code k of a row is nibble k % 8 (low first) of word k // 8."""
    rows, words = q_weight.shape
    codes = np.zeros((rows, words * 8), dtype=np.int64)
    for k in range(words * 8):
        codes[:, k] = (q_weight[:, k // 8].astype(np.int64) >> (4 * (k % 8))) & 0xF
    return codes


@pytest.mark.parametrize("quant", QUANTS)
def test_tensor_cache_matches_shard_bytes(exported, quant):
    _, root, _ = exported
    folder = folder_of(root, quant)
    cache = json.loads((folder / "tensor-cache.json").read_text())
    names = []
    for shard in cache["records"]:
        data = (folder / shard["dataPath"]).read_bytes()
        assert shard["format"] == "raw-shard" and shard["nbytes"] == len(data)
        assert shard["md5sum"] == hashlib.md5(data).hexdigest()
        offset = 0
        for rec in shard["records"]:  # packed back to back, in order, covering the whole shard
            assert rec["format"] == "raw" and rec["byteOffset"] == offset
            assert rec["nbytes"] == int(np.prod(rec["shape"])) * np.dtype(rec["dtype"]).itemsize
            offset += rec["nbytes"]
            names.append(rec["name"])
        assert offset == len(data)
    assert len(names) == len(set(names)) == cache["metadata"]["ParamSize"]
    assert cache["metadata"]["ParamBytes"] == sum(s["nbytes"] for s in cache["records"])


@pytest.mark.parametrize("quant", QUANTS)
def test_every_parameter_has_the_llama_lib_name_shape_and_dtype(exported, quant):
    model, root, _ = exported
    cache = json.loads((folder_of(root, quant) / "tensor-cache.json").read_text())
    stored = {r["name"]: (r["dtype"], r["shape"]) for s in cache["records"] for r in s["records"]}
    assert stored == expected_params(model.config, quant)


def test_q0f32_logits_match_torch_through_the_independent_reader(exported):
    model, root, _ = exported
    reference = MlcReference(folder_of(root, "q0f32"))
    for prompt in PROMPTS:
        with torch.no_grad():
            expected = model(torch.tensor([prompt])).logits[0].double().numpy()
        got = reference.logits(prompt)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-4
        assert np.abs(expected).max() > 1.0  # the comparison is not between near-zero logits


def test_q0f32_fuses_qkv_and_gate_up_in_order(exported):
    model, root, _ = exported
    arrays, _ = read_tensor_cache(folder_of(root, "q0f32"))
    state = model.state_dict()
    attn, mlp = "model.layers.1.self_attn", "model.layers.1.mlp"
    qkv = torch.cat([state[f"{attn}.{x}_proj.weight"] for x in "qkv"]).numpy()
    gate_up = torch.cat([state[f"{mlp}.gate_proj.weight"], state[f"{mlp}.up_proj.weight"]]).numpy()
    np.testing.assert_array_equal(arrays[f"{attn}.qkv_proj.weight"], qkv)
    np.testing.assert_array_equal(arrays[f"{mlp}.gate_up_proj.weight"], gate_up)


@pytest.mark.parametrize("quant,dtype", [("q4f32_1", np.float32), ("q4f16_1", np.float16)])
def test_q4_codes_and_scales_decode_as_specified(exported, quant, dtype):
    model, root, _ = exported
    arrays, _ = read_tensor_cache(folder_of(root, quant))
    state = model.state_dict()
    sources = {
        "model.layers.0.self_attn.o_proj": state["model.layers.0.self_attn.o_proj.weight"],
        "model.embed_tokens": state["model.embed_tokens.weight"],
        "model.layers.1.mlp.gate_up_proj": torch.cat(
            [state["model.layers.1.mlp.gate_proj.weight"], state["model.layers.1.mlp.up_proj.weight"]]
        ),
    }
    for name, weight in sources.items():
        w = weight.numpy().astype(dtype)  # the model dtype, as mlc-llm casts before quantizing
        q_weight, q_scale = arrays[f"{name}.q_weight"], arrays[f"{name}.q_scale"]
        assert q_weight.dtype == np.uint32 and q_scale.dtype == dtype
        groups = w.reshape(w.shape[0], -1, 32)  # [out, in/32, 32]
        np.testing.assert_array_equal(q_scale, np.abs(groups).max(-1) / dtype(7))  # symmetric: max|w| / 7
        codes = unpack_codes(q_weight)
        assert codes.min() >= 0 and codes.max() <= 14
        want = np.clip(np.rint(w / np.repeat(q_scale, 32, axis=1)) + 7, 0, 14)
        np.testing.assert_array_equal(codes, want)
        decoded = (codes - 7) * np.repeat(q_scale.astype(np.float64), 32, axis=1)
        assert np.abs(decoded - w).max() <= q_scale.max() * 0.5 * (1 + 1e-3)  # within half a step


def test_q4f16_1_needs_shader_f16_and_q4f32_1_does_not(exported):
    _, _, results = exported
    assert results["q4f16_1"].requires_shader_f16 and not results["q4f32_1"].requires_shader_f16
    assert not results["q0f32"].requires_shader_f16


@pytest.mark.parametrize("quant", QUANTS)
def test_tvm_reads_the_cache_as_we_do(exported, quant):
    tvmjs = pytest.importorskip("tvm.contrib.tvmjs", reason="apache-tvm is not installed")
    import tvm

    _, root, _ = exported
    folder = folder_of(root, quant)
    theirs, metadata = tvmjs.load_tensor_cache(str(folder), tvm.cpu())
    ours, our_metadata = read_tensor_cache(folder)
    assert metadata == our_metadata and set(theirs) == set(ours)
    for name, array in ours.items():
        np.testing.assert_array_equal(theirs[name].numpy(), array)


@pytest.mark.parametrize("quant", QUANTS)
def test_chat_config_is_what_webllm_reads(exported, quant, tokenizer_dir):
    model, root, results = exported
    folder = folder_of(root, quant)
    config = json.loads((folder / "mlc-chat-config.json").read_text())
    assert config["model_type"] == "llama" and config["quantization"] == quant and config["version"] == "0.1.0"
    assert config["vocab_size"] == config["model_config"]["vocab_size"] == 320
    assert config["context_window_size"] == config["model_config"]["context_window_size"] == 256
    assert config["prefill_chunk_size"] <= 256 and config["sliding_window_size"] == config["attention_sink_size"] == -1
    assert config["model_config"]["position_embedding_base"] == 100000.0
    assert config["model_config"]["tie_word_embeddings"] == model.config.tie_word_embeddings
    assert (config["temperature"], config["top_p"], config["repetition_penalty"]) == (0.2, 0.9, 1.0)
    conv = config["conv_template"]
    assert conv["stop_token_ids"] == [1, 2]  # <|im_end|> is added even where eos names <|im_start|>
    assert conv["stop_str"] == ["<|im_end|>"] and conv["system_message"] == "You are a tiny test model"
    assert conv["roles"]["user"] == "<|im_start|>user" and conv["seps"] == ["<|im_end|>\n"]
    assert config["tokenizer_info"]["token_postproc_method"] == "byte_level"
    for name in config["tokenizer_files"]:
        assert (folder / name).read_bytes() == (tokenizer_dir / name).read_bytes()
    assert "tokenizer.json" in config["tokenizer_files"]
    result = results[quant]
    assert sorted(result.files) == sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and f"mlc/{quant}/" in p.as_posix()
    )
    assert result.bytes == sum((root / f).stat().st_size for f in result.files)


def test_without_mlc_llm_no_library_is_written_and_the_status_says_how(exported):
    _, root, results = exported
    result = results["q4f32_1"]
    assert result.model_lib is None and not list(root.rglob("*.wasm"))
    assert result.model_lib_status.startswith("not built: mlc_llm is not installed; build with:")
    assert " ".join(compile_command("q4f32_1")) in result.model_lib_status
    build = result.build("smol")
    assert build.path == "smol/mlc/q4f32_1" and build.model_lib is None


def test_verify_reports_exact_q0f32_and_lossy_q4(exported):
    model, root, _ = exported
    exact = verify_mlc(folder_of(root, "q0f32"), model, PROMPTS, new_tokens=6)
    assert exact["max_abs_logit_diff"] < 1e-4 and exact["forced_agreement"] == 1.0
    assert abs(exact["nll"] - exact["nll_reference"]) < 1e-4 and exact["weight_rel_rmse"] == 0.0
    assert abs(exact["prompt_nll"] - exact["prompt_nll_reference"]) < 1e-4
    lossy = verify_mlc(folder_of(root, "q4f32_1"), model, PROMPTS, new_tokens=6)
    assert lossy["max_abs_logit_diff"] > 1e-3  # 4-bit weights really are different weights
    assert 0.0 <= lossy["forced_agreement"] <= 1.0 and lossy["nll"] > 0
    assert 0.01 < lossy["weight_rel_rmse"] < 0.2  # normal weights: 4-bit symmetric costs about 10%


def test_a_flipped_byte_in_a_shard_is_caught(exported, tmp_path):
    _, root, _ = exported
    folder = shutil.copytree(folder_of(root, "q4f32_1"), tmp_path / "copy")
    shard = folder / "params_shard_0.bin"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x10
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match="md5sum"):
        read_tensor_cache(folder)


def test_large_models_split_into_shards_of_about_32_mb(tmp_path, tokenizer_dir, monkeypatch):
    import exporter.mlc as mlc

    monkeypatch.setattr(mlc, "SHARD_CAP_BYTES", 40_000)  # scaled down: same rule, tiny model
    model = make_model(tied=False)
    result = write_mlc(model, tokenizer_dir, GENERATION_CONFIG, folder_of(tmp_path, "q0f32"), "q0f32", 256)
    cache = json.loads((folder_of(tmp_path, "q0f32") / "tensor-cache.json").read_text())
    sizes = [s["nbytes"] for s in cache["records"]]
    assert len(sizes) > 3 and len([f for f in result.files if f.endswith(".bin")]) == len(sizes)
    for shard in cache["records"]:  # only a single tensor larger than the cap may exceed it
        assert shard["nbytes"] <= 40_000 or len(shard["records"]) == 1
    reference = MlcReference(folder_of(tmp_path, "q0f32"))
    with torch.no_grad():
        expected = model(torch.tensor([PROMPTS[0]])).logits[0].double().numpy()
    assert np.abs(reference.logits(PROMPTS[0]) - expected).max() < 1e-4


def test_bad_inputs_are_named_errors(tmp_path, tokenizer_dir):
    model = make_model(tied=True)
    with pytest.raises(UnsupportedQuantizationError, match="unknown MLC quantization"):
        write_mlc(model, tokenizer_dir, GENERATION_CONFIG, folder_of(tmp_path, "q3f16_1"), "q3f16_1", 256)
    with pytest.raises(UnsupportedQuantizationError, match="multiple of 32") as err:
        write_mlc(
            make_model(tied=True, hidden=48),
            tokenizer_dir,
            GENERATION_CONFIG,
            folder_of(tmp_path, "q4f32_1"),
            "q4f32_1",
            256,
        )
    assert err.value.fix and "q0f32" in err.value.fix
    with pytest.raises(CorruptCheckpointError, match=r"tokenizer\.json"):
        write_mlc(model, tmp_path / "empty", GENERATION_CONFIG, folder_of(tmp_path, "q0f32"), "q0f32", 256)
    plain = make_tokenizer(tmp_path / "plain", specials=("<s>", "</s>", "<unk>"))
    with pytest.raises(UnsupportedArchitectureError, match="ChatML"):
        write_mlc(model, plain, GENERATION_CONFIG, folder_of(tmp_path, "q0f32"), "q0f32", 256)
    model.config.rope_scaling = {"rope_type": "linear", "factor": 2.0}
    with pytest.raises(UnsupportedArchitectureError, match="rope_scaling"):
        write_mlc(model, tokenizer_dir, GENERATION_CONFIG, folder_of(tmp_path, "q0f32"), "q0f32", 256)


@pytest.mark.slow
def test_the_smollm2_export_carries_a_readable_webllm_folder(shared_artifacts):
    """The LLM export's default MLC build (real SmolLM2 weights), read back through the manifest."""
    if importlib.util.find_spec("exporter.llm_export") is None:
        pytest.skip("exporter/llm_export.py does not call write_mlc yet")
    root = shared_artifacts.llm("smollm2")
    # By id: other tests export the tiny-random LLM (with its own MLC build) into the same folder.
    entry = next(m for m in load_manifest(root).models if m.id == "smollm2")
    build = next(b for b in entry.llm.mlc if b.quantization == "q4f32_1")
    assert not build.requires_shader_f16 and (build.model_lib is None) == (build.model_lib_status != "built")
    folder = root / build.path / "resolve" / "main"
    cache = json.loads((folder / "tensor-cache.json").read_text())
    listed = {f.path for f in entry.files}
    names = ["mlc-chat-config.json", "tensor-cache.json", "tokenizer.json", *(s["dataPath"] for s in cache["records"])]
    assert {f"{build.path}/resolve/main/{n}" for n in names} <= listed
    arrays, metadata = read_tensor_cache(folder)  # sizes, offsets and md5 of every shard
    assert arrays["model.embed_tokens.q_weight"].shape == (49152, 72) and metadata["ParamSize"] == len(arrays)
    config = json.loads((folder / "mlc-chat-config.json").read_text())
    assert 2 in config["conv_template"]["stop_token_ids"] and config["model_config"]["num_hidden_layers"] == 30
