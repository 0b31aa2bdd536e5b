"""`ConversationRepository`: dialog-flow state per (chat, user, thread, namespace), with optional expiry."""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist.domain import Conversation
from tgpersist.domain.conversation import decode_data, encode_data
from tgpersist.errors import InvalidArgument
from tgpersist.repositories.scope import Scope
from tgpersist.validation import MAX_NAME, check_int, check_text, read_back
from tgpersist.writes.upserts import DeleteRow, Upsert

KEY = ("session_name", "chat_id", "user_id", "thread_id", "namespace")


class ConversationRepository:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._table = scope.table(scope.models.Conversation)
        update = ("name", "step", "data_kind", "data", "updated_at", "expires_at")
        # Small writes, coalesced with other callers' by the group-commit writer.
        sa_dialect = scope.db.engine.dialect
        self._upsert = Upsert(self._table, sa_dialect, KEY, (*KEY, "created_at", *update), update)
        self._delete = DeleteRow(self._table, sa_dialect, KEY)

    async def save(self, conversation: Conversation) -> None:
        """Insert or replace a conversation; its `created_at` is kept across replacements."""
        if not isinstance(conversation, Conversation):
            raise InvalidArgument(
                "conversation", f"expected a Conversation, got {type(conversation).__name__}"
            )
        kind, data = encode_data(conversation.data)
        now = self._scope.now()
        values: dict[str, Any] = {
            "session_name": self._scope.name,
            "chat_id": conversation.chat_id,
            "user_id": conversation.user_id,
            "thread_id": conversation.thread_id or 0,
            "namespace": conversation.namespace,
            "name": conversation.name,
            "step": conversation.step,
            "data_kind": kind,
            "data": data,
            "created_at": now,
            "updated_at": now,
            "expires_at": conversation.expires_at,
        }
        await self._scope.submit(self._upsert, [values])

    async def load(
        self, chat_id: int, user_id: int, thread_id: int | None = None, namespace: str = ""
    ) -> Conversation | None:
        """The conversation, or None if there is none or it has expired."""
        t = self._table
        stmt = select(t).where(self._key(chat_id, user_id, thread_id, namespace), self._alive())

        async def work(conn: AsyncConnection) -> Row[Any] | None:
            return (await conn.execute(stmt)).first()

        row = await self._scope.read(work)
        return None if row is None else read_back(self._scope.name, self._to_domain, row, field="data")

    async def list(self, chat_id: int | None = None) -> list[Conversation]:
        """Live conversations of the account (optionally of one chat), in key order."""
        t = self._table
        stmt = select(t).where(t.c.session_name == self._scope.name, self._alive())
        if chat_id is not None:
            stmt = stmt.where(t.c.chat_id == check_int("chat_id", chat_id))
        stmt = stmt.order_by(t.c.chat_id, t.c.user_id, t.c.thread_id, t.c.namespace)

        async def work(conn: AsyncConnection) -> builtins.list[Conversation]:
            rows = await conn.execute(stmt)
            return [read_back(self._scope.name, self._to_domain, row, field="data") for row in rows]

        return await self._scope.read(work)

    async def delete(
        self, chat_id: int, user_id: int, thread_id: int | None = None, namespace: str = ""
    ) -> bool:
        self._key(chat_id, user_id, thread_id, namespace)  # checks the arguments
        key = {
            "session_name": self._scope.name,
            "chat_id": chat_id,
            "user_id": user_id,
            "thread_id": thread_id or 0,
            "namespace": namespace,
        }
        return await self._scope.submit(self._delete, key)

    async def prune(self) -> int:
        """Delete this account's expired conversations; returns how many."""
        t = self._table
        stmt = delete(t).where(t.c.session_name == self._scope.name, t.c.expires_at <= self._scope.now())

        async def work(conn: AsyncConnection) -> int:
            return (await conn.execute(stmt)).rowcount

        return await self._scope.db.run(work, write=True)

    def _key(self, chat_id: int, user_id: int, thread_id: int | None, namespace: str) -> ColumnElement[bool]:
        t = self._table
        check_int("chat_id", chat_id)
        check_int("user_id", user_id)
        if thread_id is not None:
            check_int("thread_id", thread_id, 1)
        check_text("namespace", namespace, MAX_NAME)
        return and_(
            t.c.session_name == self._scope.name,
            t.c.chat_id == chat_id,
            t.c.user_id == user_id,
            t.c.thread_id == (thread_id or 0),
            t.c.namespace == namespace,
        )

    def _alive(self) -> ColumnElement[bool]:
        expires = self._table.c.expires_at
        return or_(expires.is_(None), expires > self._scope.now())

    @staticmethod
    def _to_domain(row: Row[Any]) -> Conversation:
        return Conversation(
            chat_id=row.chat_id,
            user_id=row.user_id,
            thread_id=row.thread_id or None,
            namespace=row.namespace,
            name=row.name,
            step=row.step,
            data=decode_data(row.data_kind, row.data),
            created_at=row.created_at,
            updated_at=row.updated_at,
            expires_at=row.expires_at,
        )
