"""Side-by-side benchmarks: tgpersist on SQLite and PostgreSQL against Telethon's `SQLiteSession`,
Kurigram's `SQLiteStorage` and the raw drivers, on the same rows and the same machine.

Run `python -m benchmarks` (or `nox -s bench`); `--quick` for a short run. Each module exposes
`async def measure(urls: dict[str, str]) -> list[dict]`, `urls` naming the database of each backend.
"""
