"""A plain-text table for benchmark output: readable in a terminal and pasteable into Markdown."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["print_table"]


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print ``rows`` under ``headers`` as a Markdown table, preceded by ``title``.

    Numbers are right-aligned; everything is converted with ``str`` (format
    numbers before passing them in, e.g. ``f"{rate:,.0f}"``).
    """
    cells = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    numeric = [
        all(_looks_numeric(row[i]) for row in cells) if cells else False
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i]) for i, v in enumerate(values)
        ]
        return "| " + " | ".join(parts) + " |"

    print(f"\n{title}\n")
    print(line(list(headers)))
    print(
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if n else ("-" * (w + 2))
            for w, n in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    for row in cells:
        print(line(row))
    print()


def _looks_numeric(text: str) -> bool:
    stripped = text.replace(",", "").replace("%", "").replace("x", "").strip()
    try:
        float(stripped)
    except ValueError:
        return False
    return True
