"""aiogram 3 FSM on tgpersist: `TgPersistStorage`, a drop-in `aiogram.fsm.storage.base.BaseStorage`.

    dp = Dispatcher(storage=TgPersistStorage(store))

Each `StorageKey` is one conversation of the conversations repository:

- the account (session name) is `account.format(bot_id=key.bot_id)`, by default ``"aiogram:<bot_id>"``;
- `chat_id`, `user_id` and `thread_id` are the conversation's own (a thread id of 0 counts as none);
- the namespace is `namespace(key.destiny, key.business_connection_id)`: each part with ``\\`` and
  ``|`` escaped by a backslash, joined by ``|``; no business connection leaves the second part empty
  and an empty one is written ``|`` (so ``("a", "b|")``, ``("a|b", None)`` and ``("a", "")`` differ).
  Revision 0004 rewrote the rows of the earlier, ambiguous ``f"{destiny}|{bc or ''}"`` keys.

The FSM state is `Conversation.step` and the data dict is `Conversation.data`, stored as JSON: values
must be JSON-able (tuples come back as lists, dict keys as strings), unlike `MemoryStorage`, which keeps
any Python object. A key whose state is None and whose data is empty has no row. Otherwise the methods
behave like `MemoryStorage`'s. Calls for one key are serialised within this process; the store itself
is left open by `close()` unless `close_store=True`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from tgpersist.adapters import require

require("aiogram", "aiogram")

from aiogram.exceptions import DataNotDictLikeError  # noqa: E402
from aiogram.fsm.state import State  # noqa: E402
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey  # noqa: E402

from tgpersist.domain import Conversation  # noqa: E402
from tgpersist.store import Account, Store  # noqa: E402

DEFAULT_ACCOUNT = "aiogram:{bot_id}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


def namespace(destiny: str, business_connection_id: str | None) -> str:
    """The conversation namespace of an aiogram destiny and business connection (one per pair)."""
    if business_connection_id is None:
        connection = ""
    elif business_connection_id == "":
        connection = "|"
    else:
        connection = _escape(business_connection_id)
    return f"{_escape(destiny)}|{connection}"


class TgPersistStorage(BaseStorage):
    """aiogram FSM state and data in the conversations of `store` (see the module docstring)."""

    def __init__(self, store: Store, *, account: str = DEFAULT_ACCOUNT, close_store: bool = False) -> None:
        self.store = store
        self.account_format = account
        self.close_store = close_store
        self._locks: weakref.WeakValueDictionary[StorageKey, asyncio.Lock] = weakref.WeakValueDictionary()

    def account_of(self, key: StorageKey) -> Account:
        """The tgpersist account that holds the conversations of `key.bot_id`."""
        return self.store.account(self.account_format.format(bot_id=key.bot_id))

    @staticmethod
    def conversation_key(key: StorageKey) -> dict[str, Any]:
        """The conversation key (chat_id, user_id, thread_id, namespace) of an aiogram `StorageKey`."""
        return {
            "chat_id": key.chat_id,
            "user_id": key.user_id,
            "thread_id": key.thread_id or None,
            "namespace": namespace(key.destiny, key.business_connection_id),
        }

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        step = state.state if isinstance(state, State) else state
        async with self._lock(key):
            current = await self._load(key)
            await self._store(key, step, self._data(current))

    async def get_state(self, key: StorageKey) -> str | None:
        current = await self._load(key)
        return None if current is None else current.step

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            msg = f"Data must be a dict or dict-like object, got {type(data).__name__}"
            raise DataNotDictLikeError(msg)
        async with self._lock(key):
            current = await self._load(key)
            await self._store(key, None if current is None else current.step, data)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        return self._data(await self._load(key))

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge `data` into the stored dict (like `dict.update`) in one step; returns the new data."""
        async with self._lock(key):
            current = await self._load(key)
            merged = self._data(current)
            merged.update(data)
            await self._store(key, None if current is None else current.step, merged)
            return merged.copy()

    async def close(self) -> None:
        """Close the store if `close_store=True`; otherwise the store stays open for its owner."""
        if self.close_store:
            await self.store.close()

    # -- internals --------------------------------------------------------------------------------------
    @asynccontextmanager
    async def _lock(self, key: StorageKey) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            yield

    async def _load(self, key: StorageKey) -> Conversation | None:
        return await self.account_of(key).conversations.load(**self.conversation_key(key))

    async def _store(self, key: StorageKey, step: str | None, data: dict[str, Any]) -> None:
        where = self.conversation_key(key)
        conversations = self.account_of(key).conversations
        if step is None and not data:
            await conversations.delete(**where)
        else:
            await conversations.save(Conversation(**where, step=step, data=dict(data)))

    @staticmethod
    def _data(current: Conversation | None) -> dict[str, Any]:
        if current is None or not isinstance(current.data, dict):
            return {}
        return dict(current.data)
