"""Bytes a browser downloads per model and variant, from the manifest: the variant's own files plus
the files every variant shares (configs, tokenizer); MLC/WebLLM builds count their own folder."""

from __future__ import annotations

from contract.manifest import ModelEntry
from exporter.sources import packaged_smollm2_gguf

NOT_DOWNLOADED = ("export-report.json",)  # for people, not for the app


def model_rows(entry: ModelEntry) -> list[dict]:
    by_path = {f.path: f.bytes for f in entry.files}
    mlc_dirs = [build.path + "/" for build in (entry.llm.mlc if entry.llm else [])]
    in_variant = {p for v in entry.variants.values() for p in v.files.values()}
    shared = {
        p
        for p in by_path
        if p not in in_variant and not p.endswith(NOT_DOWNLOADED) and not any(p.startswith(d) for d in mlc_dirs)
    }
    shared_bytes = sum(by_path[p] for p in shared)
    out = []
    for name, variant in entry.variants.items():
        own = sum(by_path[p] for p in set(variant.files.values()))
        defaults = [runtime for runtime, chosen in entry.defaults.items() if chosen == name]
        out.append(
            {
                "model": entry.id,
                "variant": name,
                "runtime": "onnxruntime-web",
                "files": len(variant.files),
                "variant_bytes": own,
                "shared_bytes": shared_bytes,
                "total_bytes": own + shared_bytes,
                "default_for": defaults,
            }
        )
    for build, folder in zip(entry.llm.mlc if entry.llm else [], mlc_dirs, strict=False):
        files = [p for p in by_path if p.startswith(folder)]
        total = sum(by_path[p] for p in files)
        out.append(
            {
                "model": entry.id,
                "variant": f"mlc {build.quantization}",
                "runtime": "WebLLM",
                "files": len(files),
                "variant_bytes": total,
                "shared_bytes": 0,
                "total_bytes": total,
                "default_for": [],
            }
        )
    return out


def run(entries: list[ModelEntry], llm_source: str) -> dict:
    table = [row for entry in entries for row in model_rows(entry)]
    if llm_source == "smollm2":  # what llama.cpp loads, for scale
        gguf = packaged_smollm2_gguf()
        table.append(
            {
                "model": "smollm2",
                "variant": "source GGUF Q4_1",
                "runtime": "llama.cpp",
                "files": 1,
                "variant_bytes": gguf.stat().st_size,
                "shared_bytes": 0,
                "total_bytes": gguf.stat().st_size,
                "default_for": [],
            }
        )
    return {"rows": table}
