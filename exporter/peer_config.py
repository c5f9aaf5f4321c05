"""config.json fields the peers read: Transformers.js's dtype defaults, real architectures, no local paths.

Transformers.js 4.3 (src/utils/dtypes.js) maps a dtype name to a file suffix:
fp32 "", fp16 "_fp16", q8 "_quantized", int8 "_int8", uint8 "_uint8", q4 "_q4", q4f16 "_q4f16".
Without a dtype it loads fp32 on "cpu" (Node) and q8 on "wasm", unless config.json's
`transformers.js_config` names one (`dtype`, overlaid per device by `device_config`). The KV
cache dtype it reads from the graph's own past_key_values inputs: there is no config key for it.
"""

from __future__ import annotations

from typing import Any

# Transformers.js dtype name -> file suffix (DEFAULT_DTYPE_SUFFIX_MAPPING in 4.3.2), for the names we write.
SUFFIX = {"fp32": "", "fp16": "_fp16", "q8": "_quantized", "int8": "_int8", "uint8": "_uint8", "q4": "_q4"}


def transformers_js_config(defaults: dict[str, str], peer_dtype: dict[str, str]) -> dict[str, Any]:
    """`transformers.js_config` whose default loads our manifest's default file on every device.

    defaults: runtime (wasm, webgpu) -> our variant name; peer_dtype: our variant -> Transformers.js dtype.
    The top-level dtype covers Node's "cpu" device; wasm and webgpu get their own entries.
    """
    return {
        "dtype": peer_dtype[defaults["wasm"]],
        "device_config": {runtime: {"dtype": peer_dtype[variant]} for runtime, variant in sorted(defaults.items())},
    }


def clean_config(config: dict[str, Any], architecture: str, name: str) -> dict[str, Any]:
    """A copy with the model class peers instantiate and `_name_or_path` set to `name` (never a local path)."""
    return {**config, "architectures": [architecture], "_name_or_path": name}
