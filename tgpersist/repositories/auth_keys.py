"""Every stored auth key at once (session and DC rows): check a key ring against them, re-encrypt them.

`verify` is what `open_store` runs so that a missing or wrong key fails at open, before anything is
written; `reencrypt` is `tgpersist keys rotate|encrypt|decrypt`: one transaction, all rows or none.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist.database import Database
from tgpersist.encryption import AuthKeyCipher, KeyLocation, KeyRing
from tgpersist.errors import EncryptionError
from tgpersist.models import Models


@dataclass(frozen=True, slots=True)
class _Stored:
    table: Table
    where: KeyLocation
    row_key: dict[str, Any]
    stored: bytes
    key_id: str | None


def _tables(models: Models) -> tuple[Table, Table]:
    return models.table(models.Session), models.table(models.DcAuth)


def _row_columns(table: Table, models: Models) -> list[str]:
    if table is models.table(models.Session):
        return ["name"]
    return ["session_name", "dc_id", "media_only"]


def _location(table: Table, row: Any) -> KeyLocation:
    if "name" in row._fields:
        return KeyLocation(table.name, row.name)
    return KeyLocation(table.name, row.session_name, dc_id=row.dc_id, media_only=row.media_only)


async def _rows(
    conn: AsyncConnection, models: Models, *, lock: bool, key_id: str | None = None
) -> list[_Stored]:
    found: list[_Stored] = []
    for table in _tables(models):
        names = _row_columns(table, models)
        stmt = select(*(table.c[n] for n in names), table.c.auth_key, table.c.auth_key_id).where(
            table.c.auth_key.is_not(None)
        )
        if key_id is not None:
            stmt = stmt.where(table.c.auth_key_id == key_id).limit(1)
        if lock:
            stmt = stmt.with_for_update()
        for row in await conn.execute(stmt.order_by(*(table.c[n] for n in names))):
            found.append(
                _Stored(
                    table=table,
                    where=_location(table, row),
                    row_key={n: getattr(row, n) for n in names},
                    stored=bytes(row.auth_key),
                    key_id=row.auth_key_id,
                )
            )
    return found


async def count_by_key_id(db: Database) -> dict[str | None, int]:
    """How many stored auth keys each key id sealed; None counts the plaintext ones."""

    async def work(conn: AsyncConnection) -> dict[str | None, int]:
        counts: Counter[str | None] = Counter()
        for table in _tables(db.models):
            stmt = (
                select(table.c.auth_key_id, func.count())
                .where(table.c.auth_key.is_not(None))
                .group_by(table.c.auth_key_id)
            )
            for key_id, n in await conn.execute(stmt):
                counts[key_id] += int(n)
        return dict(counts)

    return await db.run(work, write=False)


async def verify(db: Database, cipher: AuthKeyCipher) -> None:
    """Raise EncryptionError unless `cipher` opens every key id in use (one trial decryption per id)."""

    async def work(conn: AsyncConnection) -> list[_Stored]:
        samples: list[_Stored] = []
        for table in _tables(db.models):
            ids = select(table.c.auth_key_id).where(table.c.auth_key_id.is_not(None)).distinct()
            for key_id in (await conn.execute(ids)).scalars():
                if all(s.key_id != key_id for s in samples):
                    samples.extend(await _rows(conn, db.models, lock=False, key_id=key_id))
        return samples

    for sample in await db.run(work, write=False):
        cipher.unseal(sample.stored, sample.key_id, sample.where)


async def reencrypt(db: Database, source: AuthKeyCipher, target: KeyRing | None) -> int:
    """Open every stored auth key with `source` and store it sealed with `target`'s current key (None:
    plaintext), in one transaction; returns how many rows changed. Nothing is written on any failure.
    """
    wanted = None if target is None else target.current_id
    sealer = AuthKeyCipher(target)

    async def work(conn: AsyncConnection) -> int:
        rows = await _rows(conn, db.models, lock=True)
        changes: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            plaintext = source.unseal(row.stored, row.key_id, row.where)
            if plaintext is None:
                raise EncryptionError(f"{row.where.describe()} could not be read")
            if row.key_id == wanted:
                continue  # already in the wanted form (opened above, so it is sound)
            stored, key_id = sealer.seal(plaintext, row.where)
            params = {f"k_{n}": v for n, v in row.row_key.items()}
            params.update(new_auth_key=stored, new_auth_key_id=key_id)
            changes.setdefault(row.table.name, []).append(params)
        for table in _tables(db.models):
            batch = changes.get(table.name)
            if not batch:
                continue
            names = _row_columns(table, db.models)
            stmt = (
                update(table)
                .where(*(table.c[n] == bindparam(f"k_{n}") for n in names))
                .values(auth_key=bindparam("new_auth_key"), auth_key_id=bindparam("new_auth_key_id"))
            )
            await conn.execute(stmt, batch)
        return sum(len(batch) for batch in changes.values())

    return await db.run(work, write=True)
