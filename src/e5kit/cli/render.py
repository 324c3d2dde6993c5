"""What the CLI prints: result tables, score matrices, JSON Lines. Formatting only; no work."""

from __future__ import annotations

import json
import sys
from typing import Any


def shorten(text: str, width: int = 100) -> str:
    """Whitespace collapsed, cut to `width` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def print_results(ids: list[str], queries: list[str], hits: list[list[Any]], *, as_json: bool,
                  texts: dict[str, str] | None = None) -> None:
    """Ranked hits per query as a table (rank, score, id, snippet) or as JSON Lines."""
    texts = texts or {}
    out = sys.stdout
    for qid, query, ranked in zip(ids, queries, hits, strict=True):
        if as_json:
            rows = [{"rank": h.rank, "score": round(float(h.score), 6), "id": h.id,
                     **({"text": texts[h.id]} if h.id in texts else {})} for h in ranked]
            out.write(json.dumps({"query_id": qid, "query": query, "hits": rows}, ensure_ascii=False) + "\n")
            continue
        out.write(f"query: {query}\n")
        for h in ranked:
            line = f"{h.rank:>4}  {h.score:8.4f}  {h.id}"
            out.write(f"{line}  {shorten(texts[h.id])}\n" if h.id in texts else line + "\n")
        out.write("\n")


def print_check(rows: list[Any], k: int, *, as_json: bool) -> None:
    """`index check` rows: method, recall@k, ms/query, parameters."""
    if as_json:
        print(json.dumps([r.__dict__ for r in rows], indent=1))
        return
    sys.stdout.write(f"{'method':<14} {'recall@' + str(k):>9} {'ms/query':>9}  params\n")
    for r in rows:
        sys.stdout.write(f"{r.method:<14} {r.recall:9.4f} {r.ms_per_query:9.3f}  {json.dumps(r.params)}\n")


def print_rule_report(rep: dict[str, Any], out: Any) -> None:
    if rep.get("submitted"):  # a Slurm run of the datatrove pipeline: the jobs run on
        print(f"submitted stages {', '.join(rep['stages'])}; logs under {rep['logs']}; {out}/report-rules.json "
              "appears when the last one finishes")
        return
    for step in rep["steps"]:
        print(f"{step['filter']:>14}: {step['in']:>9} -> {step['out']:>9}  (-{step['dropped']})")
    print(f"kept {rep['kept']} of {rep['input']} pairs under {out}")


def print_consistency_report(rep: dict[str, Any], out: Any) -> None:
    for source, c in rep["by_source"].items():
        print(f"{source:>14}: kept {c['kept']} of {c['input']} ({c['kept_fraction']:.1%})")
    print(f"kept {rep['kept']} of {rep['input']} pairs under {out}")


def print_mine_report(report: Any) -> None:
    """`e5kit mine`: the summary line, and where the pairs and the report are."""
    print(report.summary())


def print_pair_stats(st: dict[str, Any]) -> None:
    print(f"{st['pairs']} pairs")
    for source, c in st["sources"].items():
        print(f"{source:>14}: {c['pairs']:>9} pairs, median query {c['query_chars_median']} chars, "
              f"median passage {c['passage_chars_median']} chars")
    print(f"wrote {st['written']}")


def format_matrix(rows: list[str], cols: list[str], scores: Any, width: int = 40) -> str:
    """A plain-text table: one line per row label, one column per column label, scores to 2 decimals."""

    labels = [f"P{j + 1}" for j in range(len(cols))]
    lines = ["  ".join(f"{label}: {shorten(c, width)}" for label, c in zip(labels, cols, strict=True))]
    lines.append(f"{'':{width}}  " + "  ".join(f"{label:>7}" for label in labels))
    for i, row in enumerate(rows):
        lines.append(f"{shorten(row, width):{width}}  " + "  ".join(f"{scores[i][j]:7.2f}" for j in range(len(cols))))
    return "\n".join(lines)
