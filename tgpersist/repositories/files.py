"""`SentFileRepository`: media already uploaded to Telegram, found again by content digest.

This is Telethon's sent-file cache: a file uploaded once is re-sent by the id and access hash of its
`InputDocument`/`InputPhoto`, looked up by the MD5 digest and size of its bytes and its kind (`type`).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist.errors import InvalidArgument
from tgpersist.repositories.scope import Scope
from tgpersist.sql import statements
from tgpersist.validation import INT32_MAX, INT64_MAX, check_int

#: `SentFile.type` values, as Telethon numbers them.
DOCUMENT = 0
PHOTO = 1

MD5_LENGTH = 16
Digest = bytes | bytearray | memoryview
KEY = ("session_name", "md5_digest", "file_size", "type")


def _check_key(md5_digest: Any, file_size: Any, type: Any) -> tuple[bytes, int, int]:
    if not isinstance(md5_digest, bytes | bytearray | memoryview) or len(md5_digest) != MD5_LENGTH:
        raise InvalidArgument("md5_digest", f"expected the {MD5_LENGTH}-byte MD5 digest of the file")
    check_int("file_size", file_size, 0, INT64_MAX)
    check_int("type", type, 0, INT32_MAX)
    return bytes(md5_digest), file_size, type


@dataclass(frozen=True, slots=True)
class SentFile:
    """An uploaded file: its (md5_digest, file_size, type) key and the id/access hash to re-send it by."""

    md5_digest: bytes
    file_size: int
    type: int
    id: int
    access_hash: int

    def __post_init__(self) -> None:
        digest, _, _ = _check_key(self.md5_digest, self.file_size, self.type)
        object.__setattr__(self, "md5_digest", digest)
        check_int("id", self.id)
        check_int("access_hash", self.access_hash)


class SentFileRepository:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._table = scope.table(scope.models.SentFile)
        self._upsert = statements.upsert(self._table, scope.dialect, KEY, ["id", "access_hash"])

    async def save(self, file: SentFile) -> None:
        """Insert or replace the entry with `file`'s key."""
        await self.save_many([file])

    async def save_many(self, files: Iterable[SentFile]) -> int:
        """Insert or replace entries in one transaction; the last of duplicates wins. Returns the count."""
        rows: dict[tuple[bytes, int, int], dict[str, Any]] = {}
        for file in files:
            if not isinstance(file, SentFile):
                raise InvalidArgument("file", f"expected a SentFile, got {type(file).__name__}")
            key = (file.md5_digest, file.file_size, file.type)
            rows.pop(key, None)
            rows[key] = {
                "session_name": self._scope.name,
                "md5_digest": file.md5_digest,
                "file_size": file.file_size,
                "type": file.type,
                "id": file.id,
                "access_hash": file.access_hash,
            }
        if not rows:
            return 0
        batch = [rows[key] for key in sorted(rows)]

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(self._upsert, batch)

        await self._scope.write(work)
        return len(batch)

    async def get(self, md5_digest: Digest, file_size: int, type: int) -> SentFile | None:
        t = self._table
        stmt = select(t.c.id, t.c.access_hash).where(self._key(md5_digest, file_size, type))

        async def work(conn: AsyncConnection) -> Any:
            return (await conn.execute(stmt)).first()

        row = await self._scope.read(work)
        if row is None:
            return None
        return SentFile(bytes(md5_digest), file_size, type, row.id, row.access_hash)

    async def delete(self, md5_digest: Digest, file_size: int, type: int) -> bool:
        """Forget one entry. True if it was stored."""
        stmt = delete(self._table).where(self._key(md5_digest, file_size, type))

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(stmt)).rowcount > 0

        return await self._scope.db.run(work, write=True)

    async def list(self) -> builtins.list[SentFile]:
        """Every entry of the account, by key."""
        t = self._table
        stmt = (
            select(t.c.md5_digest, t.c.file_size, t.c.type, t.c.id, t.c.access_hash)
            .where(t.c.session_name == self._scope.name)
            .order_by(t.c.md5_digest, t.c.file_size, t.c.type)
        )

        async def work(conn: AsyncConnection) -> builtins.list[SentFile]:
            return [
                SentFile(bytes(r.md5_digest), r.file_size, r.type, r.id, r.access_hash)
                for r in await conn.execute(stmt)
            ]

        return await self._scope.read(work)

    def _key(self, md5_digest: Digest, file_size: int, type: int) -> ColumnElement[bool]:
        digest, size, kind = _check_key(md5_digest, file_size, type)
        t = self._table
        return and_(
            t.c.session_name == self._scope.name,
            t.c.md5_digest == digest,
            t.c.file_size == size,
            t.c.type == kind,
        )
