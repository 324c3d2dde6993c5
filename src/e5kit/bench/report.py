"""Benchmark results as Markdown tables and files (bench.json + bench.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from e5kit.io.atomic import atomic_write_json, atomic_write_text


def markdown_table(rows: Sequence[Any], skipped: Sequence[dict[str, str]] = ()) -> str:
    """One line per runner; runners that could not run here get a line with the reason."""
    head = ("| runner | texts/s | real tokens/s | × ST | × ST (CPU time) | peak RSS MB | encode RSS MB | GFLOP/s "
            "| % of matmul peak (dtype) | max abs diff | min cos |\n|---|" + "---:|" * 10)
    lines = [head]
    for r in rows:
        frac = "n/a" if r.peak_fraction != r.peak_fraction else f"{100 * r.peak_fraction:.0f}% ({r.dtype})"
        lines.append(f"| {r.name} | {r.texts_per_s:.1f} | {r.tokens_per_s:,.0f} | {r.ratio_to_st:.2f} | "
                     f"{r.ratio_to_st_cpu:.2f} | {r.peak_rss_mb:,.0f} | {r.encode_rss_mb:,.0f} | "
                     f"{r.flops_per_s / 1e9:,.1f} | {frac} | "
                     f"{r.max_abs_diff:.1e} | {r.min_cosine:.5f} |")
    for skip in skipped:
        reason = skip["reason"].replace("|", "/").replace("\n", " ")
        lines.append(f"| {skip['name']} | skipped: {reason} |" + " |" * 9)
    return "\n".join(lines)


def quality_markdown(q: dict[str, dict[str, float]]) -> str:
    lines = ["| mode | SciFact nDCG@10 | Δ | STSB Spearman | Δ | min cos to fp32 | inside budget |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for mode, r in q.items():
        lines.append(f"| {mode} | {r['scifact_ndcg10']:.4f} | {r['d_ndcg10']:+.4f} | {r['stsb_spearman']:.4f} | "
                     f"{r['d_spearman']:+.4f} | {r['min_cosine_to_fp32']:.5f} | "
                     f"{'yes' if r['within_budget'] else 'no'} |")
    return "\n".join(lines)


def result_markdown(result: dict[str, Any]) -> str:
    md = [f"# e5kit bench ({result['device']}, {result['threads']} threads)"]
    if "cpu" in result:
        from e5kit.bench.measure import cpu_line

        md.append(f"\nCPU: {cpu_line(result['cpu'])}")
    if "native_attention" in result:
        md.append(f"\ne5kit's native attention kernel: {result['native_attention']}")
    for size, entry in result["sizes"].items():
        md += [f"\n## {size}: {entry['texts']} texts, max length {entry['max_length']}\n", entry["table"]]
        if "st_reference_env" in entry:
            md.append("\nThe sentence-transformers reference (torch fp32) ran in a process of its own: "
                      + ", ".join(f"{k} {v}" for k, v in entry["st_reference_env"].items()))
        if "st_env" in entry:
            md.append("\nsentence-transformers backends ran in their own process and environment (peak RSS is that "
                      "process's alone; e5kit rows share one process with every model loaded): "
                      + ", ".join(f"{k} {v}" for k, v in entry["st_env"].items()))
        if "quality_table" in entry:
            md += ["", entry["quality_table"]]
    return "\n".join(md) + "\n"


def write_report(result: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """bench.json and bench.md in folder `out` (made if missing); returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "bench.json", json.loads(json.dumps(result, default=str)), indent=2)
    atomic_write_text(out / "bench.md", result_markdown(result))
    return out / "bench.json", out / "bench.md"
