"""Test helpers for the security tests: every text form a secret could leak in, and raw database dumps."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import MetaData, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import tgpersist


def key_forms(secret: bytes) -> set[str]:
    """The text forms a key (or a 24-byte window of it, at any base64 alignment) could appear in."""
    forms: set[str] = set()
    windows = [secret] + [secret[i : i + 24] for i in range(0, max(1, len(secret) - 23), 7)]
    for part in windows:
        forms.add(part.hex())
        forms.add(part.hex().upper())
        forms.add(repr(part)[2:-1])
        forms.add(part.decode("latin-1"))
        for shift in range(3):
            chunk = part[shift:]
            for encoded in (base64.b64encode(chunk), base64.urlsafe_b64encode(chunk)):
                text = encoded.decode("ascii")
                forms.add(text)
                forms.add(text.rstrip("="))
    return {form for form in forms if len(form) >= 16}


def secret_forms(keys: Iterable[bytes], api_hashes: Iterable[str] = ()) -> set[str]:
    forms: set[str] = set()
    for key in keys:
        forms |= key_forms(key)
    for api_hash in api_hashes:
        forms |= {api_hash, api_hash.lower(), api_hash.upper()}
    return forms


def leaks(text: str, forms: set[str]) -> list[str]:
    """The secret forms found in `text` (shortened, so a failing assertion does not print a secret)."""
    return [form[:6] + "..." for form in forms if form in text]


def log_text(records: Iterable[logging.LogRecord]) -> str:
    """Everything a log handler could write for `records`: messages, arguments, exception text."""
    formatter = logging.Formatter()
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
        if record.exc_text:
            parts.append(record.exc_text)
    return "\n".join(parts)


async def dump(engine: AsyncEngine, schema: str | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in the database (ours and any other), by table name, in a stable order."""

    def work(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
        meta = MetaData()
        meta.reflect(conn, schema=schema)
        out = {}
        for table in meta.sorted_tables:
            rows = conn.execute(select(table)).all()
            out[table.name] = sorted((tuple(row) for row in rows), key=repr)
        return out

    async with engine.connect() as conn:
        return await conn.run_sync(work)


async def dump_url(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = tgpersist.create_engine(url)
    try:
        return await dump(engine)
    finally:
        await engine.dispose()


def values_in(dumped: dict[str, list[tuple[Any, ...]]]) -> Iterable[Any]:
    for rows in dumped.values():
        for row in rows:
            yield from row


def plaintext_keys_in(dumped: dict[str, list[tuple[Any, ...]]], keys: Iterable[bytes]) -> list[str]:
    """Where any of `keys` appears in a raw dump: as bytes inside a binary value, or as text of a column."""
    keys = list(keys)
    forms = secret_forms(keys)
    found = []
    for table, rows in dumped.items():
        for row in rows:
            for value in row:
                if isinstance(value, bytes | bytearray | memoryview):
                    raw = bytes(value)
                    if any(key in raw for key in keys) or any(key[:32] in raw for key in keys):
                        found.append(f"{table}: binary")
                elif isinstance(value, str) and leaks(value, forms):
                    found.append(f"{table}: text")
    return found
