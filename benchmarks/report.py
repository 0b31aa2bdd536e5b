"""The results of `python -m benchmarks` as Markdown: the table of medians and ratios, and the targets
(`--markdown PATH` writes both, ready for the README's benchmark section)."""

from __future__ import annotations

from typing import Any

from benchmarks.harness import TGPERSIST


def human(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| operation | implementation | median | x fastest raw | x Telethon | x Kurigram |",
        "|---|---|---:|---:|---:|---:|",
    ]

    def ratio(row: dict[str, Any], key: str) -> str:
        return f"{row[key]:.2f}" if key in row else ""

    for row in rows:
        if "median_s" not in row:
            continue
        lines.append(
            f"| {row['operation']} | {_name(row)} | {_result(row)} | {ratio(row, 'vs_best_raw')} "
            f"| {ratio(row, 'vs_telethon')} | {ratio(row, 'vs_kurigram')} |"
        )
    return "\n".join(lines)


def scale_table(rows: list[dict[str, Any]]) -> str:
    """The rows of the contention and scale modules (pipeline, churn, pools, sessions), with notes."""
    lines = ["| operation | implementation | result | note |", "|---|---|---:|---|"]
    for row in rows:
        if row.get("group") and "median_s" in row:
            lines.append(f"| {row['operation']} | {_name(row)} | {_result(row)} | {row.get('note', '')} |")
    return "\n".join(lines)


def _name(row: dict[str, Any]) -> str:
    return f"**{row['implementation']}**" if row["kind"] == TGPERSIST else row["implementation"]


def _result(row: dict[str, Any]) -> str:
    """A rate as such (updates/s), anything else as its median time."""
    if "value" in row and "unit" in row:
        return f"{row['value']:,.0f} {row['unit']}"
    return human(row["median_s"])


def _measured(target: dict[str, Any]) -> str:
    ratio = target.get("ratio")
    if ratio is None:
        return "—"
    text = f"{ratio:.2f}x"
    if "deadlocks" in target:
        text = f"{target['deadlocks']} deadlocks, {text}"
    if target.get("statements") is not None:
        text = f"{target['statements']} statement(s), {text}"
    if "values" in target:
        ours, theirs = target["values"]
        text += f" ({ours:,.0f} vs {theirs:,.0f} {target['unit']})"
    return text


def targets_table(targets: list[dict[str, Any]]) -> str:
    lines = ["| target | measured | |", "|---|---:|---|"]
    for target in targets:
        verdict = {True: "met", False: "**not met**", None: "not measured"}[target["met"]]
        name = target["target"]
        if "bytes_per_peer" in target:
            name += f" ({target['bytes_per_peer']} bytes/peer)"
        lines.append(f"| {name} | {_measured(target)} | {verdict} |")
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    """The machine line, the table and the targets of one run."""
    m = results["machine"]
    head = (
        f"Measured on {m['cpus']} cores ({m['cpu']}), {m['platform']}, Python {m['python']}, SQLite "
        f"{m['sqlite']}, PostgreSQL {m['postgresql']} ({m['postgresql_settings']}); one full run of "
        f"{results['duration_s'] / 60:.0f} min" + (" (--quick)" if results["quick"] else "") + ":"
    )
    rows = results["rows"]
    plain = [row for row in rows if not row.get("group")]
    return (
        f"{head}\n\n{table(plain)}\n\nThroughput, contention and scale, from the same run:\n\n"
        f"{scale_table(rows)}\n\nTargets, from the same run:\n\n{targets_table(results['targets'])}\n"
    )
