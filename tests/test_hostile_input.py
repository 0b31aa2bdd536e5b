"""Hostile input against a real store: stored verbatim or rejected with InvalidArgument, never executed,
never silently truncated. Property-based (hypothesis), on SQLite and PostgreSQL.

Each example puts one hostile value into one field (the others stay valid), so that both outcomes
occur often: text with quotes, SQL fragments, control characters, NULs, lone surrogates (text that is
not valid Unicode, which is what non-UTF-8 bytes decode to with `surrogateescape`), strings around and
far beyond each length limit, and bytes or None where text belongs.
"""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from tgpersist import Conversation, DurableUpdate, InvalidArgument, Peer, PeerType, Session, Store
from tgpersist.validation import phone_key

SETTINGS = settings()  # the profile's (tests/conftest.py): bounded by default, `--hypothesis-profile=long`

INJECTIONS = [
    "'; DROP TABLE tgpersist_sessions; --",
    '"); DELETE FROM tgpersist_peers; --',
    "Robert'); DROP TABLE students;--",
    "' OR '1'='1",
    "%s %(x)s :name ? $1 {0} \\",
    "\\x00\\'\\\"",
    "a\x00b",
    "\udcff\udcfe",
    "tail\ud800",
    "bell\x07\x1b[31mred\r\n\t",
    "ﬁ ß İ ǅ \u200b\u202e mixed",
    "Drop_Table_1",
]

any_char = st.characters(exclude_categories=())  # every code point: lone surrogates and NUL included
storable_char = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


def _repeat(unit: str, times: int) -> str:
    return (unit or "x") * times


hostile_text = st.one_of(
    st.sampled_from(INJECTIONS),
    st.text(storable_char, max_size=40),
    st.text(any_char, max_size=40),
    st.from_regex(r"[A-Za-z0-9_]{1,64}", fullmatch=True),
    st.builds(_repeat, st.text(storable_char, min_size=1, max_size=2), st.sampled_from([31, 32, 33, 64, 65])),
    st.builds(
        _repeat, st.sampled_from(["a", "é", "😀", "'"]), st.integers(250, 260) | st.integers(1020, 1030)
    ),
    st.builds(_repeat, st.text(any_char, min_size=1, max_size=3), st.integers(1500, 5000)),
)
hostile_value: st.SearchStrategy[Any] = st.one_of(hostile_text, st.binary(max_size=40), st.none())


def fresh(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def constructed(build: Any) -> Any:
    """The value `build()` makes, or None if it rejected its input with InvalidArgument (only that)."""
    try:
        value = build()
    except InvalidArgument as error:
        event(f"rejected: {error.field}")
        return None
    event("stored")
    return value


def valid_text(value: Any, limit: int, *, empty: bool = True) -> bool:
    """What the text checks accept: a str of at most `limit` characters, UTF-8 encodable, no NUL."""
    if not isinstance(value, str) or len(value) > limit or "\x00" in value or (not empty and not value):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_username(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= 64
        and all(c.isascii() and (c.isalnum() or c == "_") for c in value)
    )


#: Whether each field accepts a value: None where the field is optional, else its text rule.
ACCEPTS = {
    "name": lambda v: valid_text(v, 255, empty=False),
    "first_name": lambda v: v is None or valid_text(v, 1024),
    "last_name": lambda v: v is None or valid_text(v, 1024),
    "title": lambda v: v is None or valid_text(v, 1024),
    "language": lambda v: v is None or valid_text(v, 32),
    "username": lambda v: v is None or is_username(v),
    "namespace": lambda v: valid_text(v, 255),
    "conversation_name": lambda v: v is None or valid_text(v, 255),
    "step": lambda v: v is None or valid_text(v, 1024),
    "id": lambda v: valid_text(v, 255, empty=False),
}


async def tables_intact(store: Store) -> None:
    """Injected SQL did not run: the store still answers and lists its sessions."""
    assert isinstance(await store.list_sessions(), list)
    assert await store.account(fresh("probe")).peers.count() == 0


@SETTINGS
@given(
    field=st.sampled_from(["name", "first_name", "last_name", "username"]),
    value=hostile_value,
    state=st.binary(max_size=300),
)
@example(field="name", value="x" * 255, state=b"\x00" * 64)
@example(field="name", value="x" * 256, state=b"")
@example(field="first_name", value="y" * 1024, state=b"'")
@example(field="first_name", value="y" * 1025, state=b"")
@example(field="username", value="a" * 64, state=b"")
@example(field="username", value="'; --", state=b"")
async def test_session_fields(store: Store, field: str, value: Any, state: bytes) -> None:
    name = value if field == "name" else fresh("session")
    extra = {} if field == "name" else {field: value}
    session = constructed(lambda: Session(name, dc_id=2, state=state, **extra))
    assert (session is not None) == ACCEPTS[field](value)
    if session is None:
        return
    assert (getattr(session, field), session.state) == (value, state)
    account = store.account(name)
    await account.session.save(session)
    loaded = await account.session.load()
    assert loaded == session
    assert loaded is not None and (getattr(loaded, field), loaded.state) == (value, state)
    assert name in await store.list_sessions()
    assert await account.session.delete() is True
    await tables_intact(store)


@SETTINGS
@given(name=hostile_value)
@example(name="x" * 256)
@example(name="")
async def test_account_names(store: Store, name: Any) -> None:
    try:
        account = store.account(name)
    except InvalidArgument as error:
        event("rejected")
        assert error.field == "name"
        assert not ACCEPTS["name"](name)
        return
    event("stored")
    assert ACCEPTS["name"](name)
    assert await account.updates.remember("k") is True
    assert await account.updates.seen("k") is True
    assert name in await store.list_sessions()
    await account.session.delete()
    await tables_intact(store)


@SETTINGS
@given(
    field=st.sampled_from(["first_name", "last_name", "title", "language", "username"]), value=hostile_value
)
@example(field="title", value="c" * 1024)
@example(field="first_name", value="a" * 1025)
@example(field="language", value="d" * 32)
@example(field="language", value="d" * 33)
@example(field="username", value="e" * 65)
async def test_peer_fields(store: Store, field: str, value: Any) -> None:
    account = store.account(fresh("peers"))
    peer = constructed(lambda: Peer(101, PeerType.USER, 5, **{field: value}))
    assert (peer is not None) == ACCEPTS[field](value)
    if peer is not None:
        await account.peers.save(peer)
        loaded = await account.peers.get(101)
        assert loaded == peer
        assert loaded is not None and getattr(loaded, field) == value
        if field == "username" and value is not None:
            assert await account.peers.get_by_username("@" + value.upper()) == peer
    await account.session.delete()
    await tables_intact(store)


@SETTINGS
@given(query=hostile_value)
@example(query="@" + "a" * 64)
@example(query="@Victim")
@example(query="+1 555 0101")
@example(query="'; DROP TABLE tgpersist_peers; --")
async def test_lookups_with_hostile_keys(store: Store, query: Any) -> None:
    account = store.account(fresh("lookup"))
    await account.peers.save(Peer(1, PeerType.USER, 9, username="victim", phone_number="+1 555 0101"))
    by_name = isinstance(query, str) and query.removeprefix("@").lower() == "victim"
    by_phone = isinstance(query, str) and phone_key(query) == "15550101"
    for lookup, hit in (
        (account.peers.get_by_username, by_name),
        (account.peers.get_by_phone, by_phone),
        (account.updates.seen, False),
    ):
        try:
            found = await lookup(query)
        except InvalidArgument:
            assert not hit
            continue
        assert (found not in (None, False)) == hit
    assert (await account.peers.get(1)) is not None
    await account.session.delete()
    await tables_intact(store)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | hostile_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)


def json_storable(data: Any) -> bool:
    """Bytes, or JSON whose strings are all valid Unicode, dict keys included (NUL is fine: escaped)."""
    if isinstance(data, bytes):
        return True
    if isinstance(data, str):
        return valid_text(data.replace("\x00", ""), 1 << 30)
    if isinstance(data, list):
        return all(json_storable(v) for v in data)
    if isinstance(data, dict):
        return all(json_storable(k) and json_storable(v) for k, v in data.items())
    return True


@SETTINGS
@given(
    field=st.sampled_from(["namespace", "conversation_name", "step", "data"]),
    value=hostile_value,
    data=json_values | st.binary(max_size=200),
)
@example(field="namespace", value="n" * 255, data={"'": "\x00"})
@example(field="namespace", value="n" * 256, data=None)
@example(field="step", value="s" * 1025, data=None)
@example(field="data", value=None, data={"k": "\udc80"})
@example(field="data", value=None, data={"\udc80": 1})
async def test_conversation_fields(store: Store, field: str, value: Any, data: Any) -> None:
    account = store.account(fresh("conv"))
    given_fields = {"namespace": "", "name": None, "step": None, "data": data}
    if field != "data":
        given_fields["name" if field == "conversation_name" else field] = value
    conversation = constructed(lambda: Conversation(1, 2, **given_fields))
    accepted = json_storable(data) and (field == "data" or ACCEPTS[field](value))
    assert (conversation is not None) == accepted
    if conversation is not None:
        await account.conversations.save(conversation)
        loaded = await account.conversations.load(1, 2, namespace=given_fields["namespace"])
        assert loaded == conversation
        assert loaded is not None and {k: getattr(loaded, k) for k in given_fields} == given_fields
    await account.session.delete()
    await tables_intact(store)


@SETTINGS
@given(update_id=hostile_value, payload=st.binary(max_size=2000), error=hostile_value, owner=hostile_value)
@example(update_id="u" * 255, payload=b"\x00'\"; DROP", error="e" * 5000, owner="o" * 255)
@example(update_id="u", payload=b"", error="a\x00b\udcff" + "e" * (2 << 20), owner="o")
@example(update_id="u" * 256, payload=b"", error="e", owner="o")
async def test_queue_fields(store: Store, update_id: Any, payload: bytes, error: Any, owner: Any) -> None:
    account = store.account(fresh("queue"))
    update = constructed(lambda: DurableUpdate(payload, id=update_id))
    assert (update is not None) == ACCEPTS["id"](update_id)
    if update is not None:
        assert await account.updates.enqueue(update) is True
        try:
            claimed = await account.updates.claim(1, owner=owner)
        except InvalidArgument:
            assert not ACCEPTS["id"](owner)
            claimed = await account.updates.claim(1, owner="worker")
        assert [(u.id, u.payload) for u in claimed] == [(update_id, payload)]
        try:
            assert await account.updates.fail(update_id, error) is True
        except InvalidArgument:
            assert not isinstance(error, str)
        else:
            stored = await account.updates.get(update_id)
            # Documented: any error message is kept up to its first 4096 characters, with NUL and
            # lone surrogates (which no database stores) replaced.
            kept = "".join("\ufffd" if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in error[:4096])
            assert stored is not None and stored.last_error == kept
    await account.session.delete()
    await tables_intact(store)


@SETTINGS
@given(key=hostile_value)
@example(key="k" * 255)
@example(key="k" * 256)
@example(key="msg:'1';--")
async def test_dedup_keys(store: Store, key: Any) -> None:
    account = store.account(fresh("dedup"))
    try:
        first = await account.updates.remember(key)
    except InvalidArgument:
        event("rejected")
        assert not ACCEPTS["id"](key)
        return
    event("stored")
    assert ACCEPTS["id"](key)
    assert first is True
    assert await account.updates.remember(key) is False
    assert await account.updates.seen(key) is True
    assert await account.updates.seen(key + "x" if len(key) < 255 else key[:-1]) is False
    await account.session.delete()
    await tables_intact(store)
