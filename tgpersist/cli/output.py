"""How list commands print: an aligned table with a header on a terminal, tab-separated lines
without a header otherwise (for `cut` and `awk`), or with `--json` one JSON document."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def cell(value: Any) -> str:
    """A table cell: `-` for nothing, otherwise the value on one line."""
    if value is None or value == "":
        return "-"
    return " ".join(str(value).split())


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], stream: TextIO | None = None) -> None:
    out = stream if stream is not None else sys.stdout
    cells = [[cell(v) for v in row] for row in rows]
    if not is_terminal(out):
        for row in cells:
            print("\t".join(row), file=out)
        return
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out)


def emit_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def seconds(value: float | None) -> str:
    """A duration for a table: 42s, 5m03s, 2h07m, 3d04h."""
    if value is None:
        return "-"
    total = int(value)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    if total < 86400:
        return f"{total // 3600}h{total % 3600 // 60:02d}m"
    return f"{total // 86400}d{total % 86400 // 3600:02d}h"
