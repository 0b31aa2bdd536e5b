"""nox sessions: tests per backend, lint, typecheck, benchmarks."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

EXTRAS = ".[test]"


@nox.session
@nox.parametrize("backend", ["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def tests(session: nox.Session, backend: str) -> None:
    """The test suite on one backend (PostgreSQL: a throwaway server, or TGPERSIST_TEST_POSTGRES_URL)."""
    session.install("-e", EXTRAS)
    session.run("pytest", f"--backend={backend}", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "tgpersist", "tests", "migrations", "benchmarks", "examples", "noxfile.py")
    session.run(
        "ruff",
        "format",
        "--check",
        "tgpersist",
        "tests",
        "migrations",
        "benchmarks",
        "examples",
        "noxfile.py",
    )


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", EXTRAS, "mypy")
    session.run("mypy", "--strict", "tgpersist")


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side benchmarks; writes benchmarks/results.json."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)
