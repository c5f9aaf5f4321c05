"""FuDD's pairwise descriptions format (BatsResearch/fudd, differential_descriptions/<dataset>_prompt_pairs.json):

    {"3_7": {"classes": [3, 7],
             "prompt_pairs": [{"attr_type": "color", "prompt_pair": ["<describes class 3>", "<describes class 7>"]}]}}

Keys are "<min>_<max>" of class indices into a class-name list (their <dataset>_class_names.json;
here by default the evaluation folder's sorted class names). `prompt_pair[i]` describes `classes[i]`.
We write one extra field, "labels": the two class names, which FuDD's loader ignores and ours checks.
"""

from __future__ import annotations

import json
from pathlib import Path

from reference.errors import DescriptionsFileError

Pairs = dict[tuple[str, str], list[tuple[str, str]]]  # (a, b) -> [(describes a, describes b)]
_FIX = (
    'write {"<i>_<j>": {"classes": [i, j], "prompt_pairs": [{"attr_type": "...", "prompt_pair": '
    '["<for class i>", "<for class j>"]}]}} with i, j indices into the class names (sorted folder names)'
)


def load_pairs(path: Path, class_names: list[str]) -> Pairs:
    """The file's descriptions by class-name pair, in both orientations."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DescriptionsFileError(f"cannot read {path}: {err}", fix=_FIX) from err
    if not isinstance(data, dict):
        raise DescriptionsFileError(f"{path}: the top level must be an object keyed by class pairs", fix=_FIX)
    pairs: Pairs = {}
    for key, entry in data.items():
        where = f"{path} [{key!r}]"
        try:
            i, j = (int(c) for c in entry["classes"])
            prompt_pairs = [
                (str(p["prompt_pair"][0]), str(p["prompt_pair"][1]))
                for p in entry["prompt_pairs"]
                if len(p["prompt_pair"]) == 2
            ]
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise DescriptionsFileError(
                f"{where}: not a FuDD pair entry ({type(err).__name__}: {err})", fix=_FIX
            ) from err
        if not (0 <= i < len(class_names) and 0 <= j < len(class_names)) or i == j:
            raise DescriptionsFileError(
                f"{where}: classes {[i, j]} are not two of the {len(class_names)} classes",
                fix="index the classes in sorted folder-name order, or pass --class-names",
            )
        a, b = class_names[i], class_names[j]
        if "labels" in entry and list(entry["labels"]) != [a, b]:
            raise DescriptionsFileError(
                f"{where}: labels {entry['labels']} but classes {[i, j]} are {[a, b]}",
                fix="the class order differs from the one the file was written for: pass --class-names",
            )
        pairs[(a, b)] = prompt_pairs
        pairs[(b, a)] = [(y, x) for x, y in prompt_pairs]
    return pairs


def dump_pairs(pairs: Pairs, class_names: list[str], attr_type: str) -> dict:
    """Pairs of known classes -> the FuDD file's object (each unordered pair once, lower index first)."""
    index = {name: i for i, name in enumerate(class_names)}
    out: dict[str, dict] = {}
    for (a, b), described in sorted(pairs.items(), key=lambda kv: (index[kv[0][0]], index[kv[0][1]])):
        i, j = index[a], index[b]
        if i < j and described:
            out[f"{i}_{j}"] = {
                "classes": [i, j],
                "labels": [a, b],
                "prompt_pairs": [{"attr_type": attr_type, "prompt_pair": [x, y]} for x, y in described],
            }
    return out
