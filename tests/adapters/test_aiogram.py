"""`TgPersistStorage` against aiogram's own `MemoryStorage`, then again after reopening the store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiogram import Dispatcher
from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.memory import MemoryStorage

import tgpersist
from tgpersist import Conversation, InvalidArgument
from tgpersist.adapters.aiogram import TgPersistStorage


class Order(StatesGroup):
    name = State()
    address = State()


PLAIN = StorageKey(bot_id=1, chat_id=-100, user_id=20)
THREAD = StorageKey(bot_id=1, chat_id=-100, user_id=20, thread_id=7)
BUSINESS = StorageKey(bot_id=1, chat_id=-100, user_id=20, business_connection_id="bc-1")
DESTINY = StorageKey(bot_id=1, chat_id=-100, user_id=20, destiny="payments")
OTHER_BOT = StorageKey(bot_id=2, chat_id=-100, user_id=20)
UNTOUCHED = StorageKey(bot_id=1, chat_id=5, user_id=5)
KEYS = [PLAIN, THREAD, BUSINESS, DESTINY, OTHER_BOT, UNTOUCHED]


async def outcome(call: Any) -> Any:
    try:
        return await call()
    except Exception as error:
        return type(error).__name__, str(error)


async def run_script(storage: Any) -> list[Any]:
    """The calls a bot's handlers make through `FSMContext`, and what each returns."""
    results: list[Any] = []
    add = results.append
    add(await storage.set_state(PLAIN, Order.name))
    add(await storage.update_data(PLAIN, {"name": "Ann", "items": [1, 2]}))
    add(await storage.update_data(PLAIN, {"qty": 3}))
    add(await storage.set_state(PLAIN, Order.address))
    add(await storage.set_state(THREAD, "Order:name"))
    add(await storage.set_data(THREAD, {"thread": True}))
    add(await storage.set_data(BUSINESS, {"bc": "yes"}))
    add(await storage.set_state(DESTINY, "Pay:card"))
    add(await storage.set_state(DESTINY, None))  # state cleared, data (none) stays empty
    add(await storage.set_state(OTHER_BOT, Order.name))
    add(await storage.set_data(OTHER_BOT, {"n": None, "nested": {"a": [True, 1.5]}}))
    add(await storage.set_state(OTHER_BOT, None))  # data stays
    add(await outcome(lambda: storage.set_data(PLAIN, [("not", "a dict")])))
    add(await storage.update_data(THREAD, [("pairs", "work")]))
    return results


async def observe(storage: Any) -> list[Any]:
    seen: list[Any] = []
    for key in KEYS:
        seen.append(await storage.get_state(key))
        seen.append(await storage.get_data(key))
        seen.append(await storage.get_value(key, "name"))
        seen.append(await storage.get_value(key, "missing", "default"))
    return seen


async def test_same_results_as_memory_storage_then_after_reopening(db_url: str) -> None:
    reference = MemoryStorage()
    expected_results = await run_script(reference)
    expected = await observe(reference)
    assert expected_results[-2][0] == "DataNotDictLikeError"

    async with await tgpersist.open_store(db_url) as store:
        storage = TgPersistStorage(store)
        assert await run_script(storage) == expected_results
        assert await observe(storage) == expected
        await storage.close()  # leaves the store open
        assert await observe(storage) == expected
    async with await tgpersist.open_store(db_url) as store:
        assert await observe(TgPersistStorage(store)) == expected


async def test_keys_map_onto_conversations(store: tgpersist.Store) -> None:
    storage = TgPersistStorage(store)
    await run_script(storage)
    assert {"aiogram:1", "aiogram:2"} <= set(await store.list_sessions())
    stored = await store.account("aiogram:1").conversations.list(-100)
    assert [(c.user_id, c.thread_id, c.namespace, c.step, c.data) for c in stored] == [
        (20, None, "default|", "Order:address", {"name": "Ann", "items": [1, 2], "qty": 3}),
        (20, None, "default|bc-1", None, {"bc": "yes"}),
        (20, 7, "default|", "Order:name", {"thread": True, "pairs": "work"}),
    ]
    assert await store.account("aiogram:1").conversations.load(-100, 20, namespace="payments|") is None
    custom = TgPersistStorage(store, account="bot-{bot_id}-fsm")
    await custom.set_state(PLAIN, "S:x")
    assert (await store.account("bot-1-fsm").conversations.load(-100, 20, namespace="default|")) == (
        Conversation(-100, 20, namespace="default|", step="S:x", data={})
    )


async def test_clearing_state_and_data_removes_the_row(store: tgpersist.Store) -> None:
    storage = TgPersistStorage(store)
    await storage.set_state(PLAIN, Order.name)
    await storage.set_data(PLAIN, {"x": 1})
    await storage.set_data(PLAIN, {})
    assert await store.account("aiogram:1").conversations.list() != []
    await storage.set_state(PLAIN, None)
    assert await store.account("aiogram:1").conversations.list() == []
    assert (await storage.get_state(PLAIN), await storage.get_data(PLAIN)) == (None, {})


async def test_fsm_context_and_dispatcher_use_it(store: tgpersist.Store) -> None:
    storage = TgPersistStorage(store)
    dispatcher = Dispatcher(storage=storage)
    assert dispatcher.fsm.storage is storage
    context = FSMContext(storage=storage, key=PLAIN)
    await context.set_state(Order.address)
    await context.update_data(city="Paris")
    assert await context.get_state() == "Order:address"
    assert await context.get_data() == {"city": "Paris"}
    await context.clear()
    assert (await context.get_state(), await context.get_data()) == (None, {})


async def test_concurrent_updates_of_one_key_are_all_kept(store: tgpersist.Store) -> None:
    storage = TgPersistStorage(store)
    await asyncio.gather(*(storage.update_data(PLAIN, {f"k{i}": i}) for i in range(20)))
    assert await storage.get_data(PLAIN) == {f"k{i}": i for i in range(20)}


async def test_thread_zero_is_no_thread_and_bad_data_is_refused(store: tgpersist.Store) -> None:
    storage = TgPersistStorage(store)
    await storage.set_state(StorageKey(bot_id=1, chat_id=1, user_id=1, thread_id=0), "S:zero")
    assert await storage.get_state(StorageKey(bot_id=1, chat_id=1, user_id=1)) == "S:zero"
    with pytest.raises(DataNotDictLikeError):
        await storage.set_data(PLAIN, "text")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument) as info:
        await storage.set_data(PLAIN, {"not json": object()})
    assert info.value.field == "data"
    assert await storage.get_data(PLAIN) == {}


async def test_close_store_true_closes_the_store(db_url: str) -> None:
    store = await tgpersist.open_store(db_url)
    storage = TgPersistStorage(store, close_store=True)
    await storage.set_state(PLAIN, "S:x")
    await storage.close()
    async with await tgpersist.open_store(db_url) as again:
        assert await TgPersistStorage(again).get_state(PLAIN) == "S:x"


async def test_keys_that_the_old_encoding_merged_are_kept_apart(store: tgpersist.Store) -> None:
    """`("a", "b|")` vs `("a|b", None)` and an empty business connection vs none: one row each."""
    storage = TgPersistStorage(store)
    keys = [
        StorageKey(bot_id=1, chat_id=1, user_id=1, destiny="a", business_connection_id="b|"),
        StorageKey(bot_id=1, chat_id=1, user_id=1, destiny="a|b"),
        StorageKey(bot_id=1, chat_id=1, user_id=1, destiny="a", business_connection_id=""),
        StorageKey(bot_id=1, chat_id=1, user_id=1, destiny="a"),
        StorageKey(bot_id=1, chat_id=1, user_id=1, destiny="a\\", business_connection_id="|b"),
        StorageKey(bot_id=1, chat_id=1, user_id=1, destiny="a\\|", business_connection_id="b"),
    ]
    for number, key in enumerate(keys):
        await storage.set_state(key, f"S:{number}")
    assert [await storage.get_state(key) for key in keys] == [f"S:{n}" for n in range(len(keys))]
    stored = await store.account("aiogram:1").conversations.list(1)
    assert sorted(c.namespace for c in stored) == sorted(
        ["a|b\\|", "a\\|b|", "a||", "a|", "a\\\\|\\|b", "a\\\\\\||b"]
    )
