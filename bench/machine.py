"""Where the numbers came from: CPU model, cores, load average, versions."""

from __future__ import annotations

import os
import platform
import subprocess


def cpu_model() -> str:
    """lscpu's "Model name" (the CPU as the kernel reports it)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return platform.processor() or platform.machine()
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def chromium_version(executable: str) -> str:
    try:
        return subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        return "not found"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def describe(chromium: str) -> dict:
    import onnxruntime
    import torch

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_start": load_average(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "chromium": chromium_version(chromium),
    }
