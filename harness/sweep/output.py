"""What a sweep writes to ``--out``: the rows as Parquet and CSV, the summary as JSON, and a
plot of the distributions (one panel per metric, a box per scenario, setting and strategy)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.sweep.summary import METRICS, Row

ROWS_PARQUET = "cells.parquet"
ROWS_CSV = "cells.csv"
SUMMARY_JSON = "summary.json"
PLOT_PNG = "distributions.png"


def write_all(out: Path, rows: Sequence[Row], summary: Sequence[dict[str, Any]]) -> list[Path]:
    import pyarrow as pa  # noqa: PLC0415  (the sweep extra)
    import pyarrow.csv  # noqa: PLC0415
    import pyarrow.parquet  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = pa.table({c: [row.get(c) for row in rows] for c in columns})
    pyarrow.parquet.write_table(table, out / ROWS_PARQUET)
    pyarrow.csv.write_csv(table, out / ROWS_CSV)
    (out / SUMMARY_JSON).write_text(json.dumps(list(summary), indent=1) + "\n", encoding="utf-8")
    write_plot(rows, out / PLOT_PNG)
    return [out / name for name in (ROWS_PARQUET, ROWS_CSV, SUMMARY_JSON, PLOT_PNG)]


def write_plot(rows: Sequence[Row], path: Path) -> None:
    import matplotlib as mpl  # noqa: PLC0415  (the plots extra)

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    groups: dict[str, list[Row]] = {}
    for row in rows:
        label = f"{row['scenario']}\n{row['setting']}\n{row['strategy']}"
        groups.setdefault(label, []).append(row)
    labels = list(groups)
    fig, axes = plt.subplots(
        len(METRICS), 1, figsize=(max(6.0, 1.1 * len(labels) + 2.0), 2.6 * len(METRICS))
    )
    for ax, (column, title, _) in zip(axes, METRICS, strict=True):
        data = [
            [float(r[column]) for r in groups[g] if isinstance(r.get(column), int | float)]
            for g in labels
        ]
        shown = [(i + 1, d) for i, d in enumerate(data) if d]
        if shown:
            ax.boxplot([d for _, d in shown], positions=[p for p, _ in shown], widths=0.6)
        ax.set_xlim(0.5, len(labels) + 0.5)
        ax.set_xticks(range(1, len(labels) + 1))
        ax.set_xticklabels(labels if ax is axes[-1] else [""] * len(labels), fontsize=7)
        ax.set_title(title, fontsize=9, loc="left")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"sweep: {len(rows)} cells, spread over seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
