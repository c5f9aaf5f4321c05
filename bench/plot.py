"""One PNG of the run: LLM decode, CLIP per-image time, load time, download size (medians, min/max bars)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here; must precede pyplot
import matplotlib.pyplot as plt

from bench.report import ENGINES


def _grouped(ax, rows: list[dict], title: str, unit: str) -> None:
    """One group of bars per row: the engines that measured it, side by side, min/max whiskers."""
    colors = {engine: f"C{k}" for k, engine in enumerate(ENGINES)}
    labelled: set[str] = set()
    for x, row in enumerate(rows):
        present = [e for e in ENGINES if row["values"].get(e)]
        width = 0.8 / max(len(present), 2)
        for k, engine in enumerate(present):
            got = row["values"][engine]
            ax.bar(
                x + (k - (len(present) - 1) / 2) * width,
                got["median"],
                width,
                color=colors[engine],
                yerr=[[got["median"] - got["min"]], [got["max"] - got["median"]]],
                capsize=2,
                label=None if engine in labelled else ENGINES[engine],
            )
            labelled.add(engine)
    models = {r["model"] for r in rows}
    ax.set_xticks(
        range(len(rows)),
        [r["file"].split(" (")[0] + (f"\n{r['model']}" if len(models) > 1 else "") for r in rows],
        fontsize=8,
    )
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(unit)
    ax.legend(fontsize=7)


def draw(results: dict, path: Path) -> Path:
    sections = results["sections"]
    panels = []
    if "llm" in sections:
        panels.append(
            ([r for r in sections["llm"]["rows"] if r["metric"] == "decode"], "LLM decode (higher is better)", "tok/s")
        )
    if "clip" in sections:
        panels.append(
            (
                [r for r in sections["clip"]["rows"] if r["metric"] == "image, batch 1"],
                "CLIP image, batch 1 (lower is better)",
                "ms per image",
            )
        )
    if "load" in sections:
        panels.append(
            (
                [r | {"file": f"{r['file'].split(',')[0]}, {r['metric']}"} for r in sections["load"]["rows"]],
                "Load to first answer (lower is better)",
                "ms",
            )
        )
    if "speech" in sections:
        panels.append((sections["speech"]["rows"], "Whisper real-time factor (lower is better)", "s per s of audio"))
    fig, axes = plt.subplots(
        len(panels) + ("sizes" in sections), 1, figsize=(11, 3.6 * (len(panels) + 1)), squeeze=False
    )
    for ax, (rows, title, unit) in zip(axes[:, 0], panels, strict=False):
        _grouped(ax, rows, title, unit)
    if "sizes" in sections:
        ax = axes[-1, 0]
        rows = sections["sizes"]["rows"]
        ax.barh([f"{r['model']} {r['variant']}" for r in rows], [r["total_bytes"] / 1e6 for r in rows])
        ax.set_xlabel("MB to download")
        ax.set_title("Download size (lower is better)", fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
    m = results["machine"]
    fig.suptitle(
        f"Lumen benchmarks: {m['cpu']}, {m['cores']} cores, 1-min load average "
        f"{m['load_average_start'][0]} at start, {m.get('load_average_end', ['?'])[0]} at end"
        + (" (--quick: tiny models)" if results["config"]["quick"] else ""),
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
