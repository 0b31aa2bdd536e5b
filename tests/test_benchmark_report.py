"""The benchmark runner's verdicts and its Markdown (what the README's tables are made from), on rows
of the shape the modules produce."""

from __future__ import annotations

from typing import Any

from benchmarks.__main__ import add_ratios, targets
from benchmarks.harness import RAW, TGPERSIST
from benchmarks.report import markdown


def _row(operation: str, implementation: str, kind: str, median_s: float, **extra: Any) -> dict[str, Any]:
    return {
        "operation": operation,
        "implementation": implementation,
        "kind": kind,
        "median_s": median_s,
    } | extra


def _rows() -> list[dict[str, Any]]:
    op = "remember, 64 concurrent callers (SQLite)"
    pipeline = "pipeline: 1 producer x 64 coroutines, 4 workers, 10,000 updates (end to end)"
    return [
        _row(op, "tgpersist sqlite, 64 callers", TGPERSIST, 25e-6),
        _row(op, "raw aiosqlite", RAW, 500e-6),
        _row(
            pipeline,
            "tgpersist postgresql",
            TGPERSIST,
            1 / 2900,
            group="pipeline",
            value=2900.0,
            unit="updates/s",
        ),
        _row(pipeline, "PgQueuer 1.6.0", RAW, 1 / 530, group="pipeline", value=530.0, unit="updates/s"),
        _row(
            "churn",
            "moving",
            TGPERSIST,
            0.01,
            group="churn",
            processes=4,
            moving=True,
            value=70.0,
            deadlocks=0,
        ),
        _row(
            "churn",
            "staying",
            TGPERSIST,
            0.01,
            group="churn",
            processes=4,
            moving=False,
            value=100.0,
            deadlocks=0,
        ),
        _row("list", "tgpersist postgresql", TGPERSIST, 0.02, group="sessions", ratio=12.5, statements=1),
    ]


def test_targets_judge_time_ratios_rates_deadlocks_and_statements() -> None:
    rows = _rows()
    add_ratios(rows)
    verdicts = {t["target"]: t for t in targets(rows)}
    remember = verdicts[
        "remember, 64 concurrent callers (SQLite): ≥ 8x the throughput of raw aiosqlite (time ratio ≤ 0.125)"
    ]
    assert (remember["ratio"], remember["met"]) == (0.05, True)
    pipeline = verdicts["pipeline end to end at least as fast as PgQueuer"]
    assert pipeline["met"] is True and pipeline["values"] == [2900.0, 530.0]
    churn = verdicts["4 processes moving usernames: 0 deadlocks, >= 0.5x no-move"]
    assert (churn["ratio"], churn["met"]) == (0.7, True)
    listing = verdicts["list (tgpersist postgresql): <= 10x, one statement"]
    assert listing["met"] is False


def test_markdown_has_the_table_and_the_targets_of_one_run() -> None:
    rows = _rows()
    add_ratios(rows)
    results = {
        "machine": {
            "cpus": 2,
            "cpu": "AMD EPYC",
            "platform": "Linux",
            "python": "3.11.7",
            "sqlite": "3.40.1",
            "postgresql": "15.18",
            "postgresql_settings": "throwaway server",
        },
        "quick": False,
        "duration_s": 1500.0,
        "rows": rows,
        "targets": targets(rows),
    }
    text = markdown(results)
    assert text.startswith("Measured on 2 cores (AMD EPYC), Linux, Python 3.11.7, SQLite 3.40.1, PostgreSQL")
    assert "one full run of 25 min:" in text
    assert (
        "| remember, 64 concurrent callers (SQLite) | **tgpersist sqlite, 64 callers** | 25.0 µs | 0.05 |"
        in text
    )
    assert (
        "| pipeline end to end at least as fast as PgQueuer | 5.47x (2,900 vs 530 updates/s) | met |" in text
    )
    assert "| 4 processes moving usernames: 0 deadlocks, >= 0.5x no-move | 0 deadlocks, 0.70x | met |" in text
    assert (
        "| list (tgpersist postgresql): <= 10x, one statement | 1 statement(s), 12.50x | **not met** |"
        in text
    )
