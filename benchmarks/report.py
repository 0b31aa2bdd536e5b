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
        name = f"**{row['implementation']}**" if row["kind"] == TGPERSIST else row["implementation"]
        lines.append(
            f"| {row['operation']} | {name} | {human(row['median_s'])} | {ratio(row, 'vs_best_raw')} "
            f"| {ratio(row, 'vs_telethon')} | {ratio(row, 'vs_kurigram')} |"
        )
    return "\n".join(lines)


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
    targets = targets_table(results["targets"])
    return f"{head}\n\n{table(results['rows'])}\n\nTargets, from the same run:\n\n{targets}\n"
