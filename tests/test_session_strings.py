"""Session string codecs, checked against the strings Telethon and Kurigram themselves make and read."""

from __future__ import annotations

import base64
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pyrogram.storage import SQLiteStorage
from pyrogram.storage.storage import Storage
from telethon.crypto import AuthKey
from telethon.sessions import StringSession

from tests.importers.clients import AUTH_KEY, OTHER_KEY
from tgpersist import InvalidArgument, InvalidSessionString, Session, TgPersistError, dc_table
from tgpersist import session_strings as codec
from tgpersist.session_strings import Layout, StringFormat

# -- helpers: the clients' own encoders and decoders -----------------------------------------------


def telethon_string(dc_id: int, address: str, port: int, key: bytes) -> str:
    session = StringSession()
    session.set_dc(dc_id, address, port)
    session.auth_key = AuthKey(key)
    return str(session.save())


def telethon_reads(text: str) -> tuple[Any, ...]:
    session = StringSession(text)
    key = session.auth_key.key if session.auth_key else None
    return session.dc_id, session.server_address, session.port, key


async def kurigram_string(**values: Any) -> str:
    storage = SQLiteStorage("s", workdir=Path("."), in_memory=True)
    await storage.open()
    for field in ("dc_id", "api_id", "test_mode", "auth_key", "user_id", "is_bot"):
        await getattr(storage, field)(values[field])
    text = await storage.export_session_string()
    await storage.close()
    return str(text)


async def kurigram_reads(text: str) -> dict[str, Any]:
    storage = SQLiteStorage("s", workdir=Path("."), session_string=text, in_memory=True)
    await storage.open()
    fields = ("dc_id", "server_address", "port", "api_id", "test_mode", "auth_key", "user_id", "is_bot")
    values = {field: await getattr(storage, field)() for field in fields}
    await storage.close()
    values["test_mode"] = bool(values["test_mode"])
    values["is_bot"] = bool(values["is_bot"])
    return values


def session(**fields: Any) -> Session:
    return Session(name="s", **fields)


# -- Telethon ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dc_id", "address", "port", "layout"),
    [
        (4, "149.154.167.91", 443, Layout.TELETHON_IPV4),
        (5, "91.108.56.130", 443, Layout.TELETHON_IPV4),
        (2, "10.20.30.40", 8443, Layout.TELETHON_IPV4),
        (4, "2001:67c:4e8:f004::a", 443, Layout.TELETHON_IPV6),
        (1, "2001:b28:f23d:f001::a", 80, Layout.TELETHON_IPV6),
    ],
)
def test_telethon_strings_decode_and_encode_byte_exact(
    dc_id: int, address: str, port: int, layout: Layout
) -> None:
    text = telethon_string(dc_id, address, port, AUTH_KEY)
    decoded = codec.decode(text, name="alice")
    assert decoded.layout is layout
    assert decoded.format is StringFormat.TELETHON
    s = decoded.session
    assert (s.name, s.dc_id, s.server_address, s.port, s.auth_key) == (
        "alice",
        dc_id,
        address,
        port,
        AUTH_KEY,
    )
    assert s.test_mode is False
    assert decoded.filled_from_dc_table == ()
    assert decoded.missing == ("api_id", "user_id", "is_bot")
    assert s.user_id is None
    assert codec.encode_telethon(s) == text
    assert codec.encode(s, "telethon") == text


@pytest.mark.parametrize("address", ["149.154.167.40", "2001:67c:4e8:f002::e"])
def test_a_telethon_string_on_a_test_dc_is_test_mode(address: str) -> None:
    decoded = codec.decode(telethon_string(2, address, 80, AUTH_KEY), name="t")
    assert decoded.session.test_mode is True
    assert decoded.filled_from_dc_table == ("test_mode",)


@pytest.mark.parametrize("address", ["149.154.175.53", "2001:b28:f23d:f001::a"])
def test_telethon_loads_what_we_encode(address: str) -> None:
    ours = codec.encode_telethon(session(dc_id=1, server_address=address, port=443, auth_key=OTHER_KEY))
    assert telethon_reads(ours) == (1, address, 443, OTHER_KEY)


def test_an_all_zero_telethon_key_means_no_key_as_in_telethon() -> None:
    text = telethon_string(2, "149.154.167.51", 443, bytes(256))
    assert telethon_reads(text)[3] is None
    assert codec.decode(text, name="z").session.auth_key is None


def test_surrounding_whitespace_is_ignored() -> None:
    text = telethon_string(2, "149.154.167.51", 443, AUTH_KEY)
    assert codec.decode(f"  {text}\n", name="w").session.auth_key == AUTH_KEY


# -- Pyrogram / Kurigram -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dc_id", "test_mode", "is_bot", "address", "port"),
    [
        (4, False, False, "149.154.167.91", 443),
        (5, False, True, "91.108.56.130", 443),
        (2, True, False, "149.154.167.40", 80),
        (3, True, True, "149.154.175.117", 80),
    ],
)
async def test_kurigram_strings_decode_and_encode_byte_exact(
    dc_id: int, test_mode: bool, is_bot: bool, address: str, port: int
) -> None:
    values = {
        "dc_id": dc_id,
        "api_id": 2**31 - 1,
        "test_mode": test_mode,
        "auth_key": AUTH_KEY,
        "user_id": 2**63 - 1,
        "is_bot": is_bot,
    }
    text = await kurigram_string(**values)
    decoded = codec.decode(text, name="kuri")
    assert decoded.layout is Layout.PYROGRAM
    s = decoded.session
    got = {field: getattr(s, field) for field in values}
    assert got == values
    # Pyrogram strings carry no address: filled from the DC table, exactly as Kurigram itself fills it.
    assert (s.server_address, s.port) == (address, port)
    assert decoded.filled_from_dc_table == ("server_address", "port")
    assert decoded.missing == ()
    assert codec.encode_pyrogram(s) == text
    loaded = await kurigram_reads(codec.encode(s, StringFormat.PYROGRAM))
    assert loaded == {**values, "server_address": address, "port": port}


@pytest.mark.parametrize(
    ("fmt", "layout", "user_id"),
    [
        (Storage.OLD_SESSION_STRING_FORMAT, Layout.PYROGRAM_OLD, 2**32 - 1),
        (Storage.OLD_SESSION_STRING_FORMAT_64, Layout.PYROGRAM_OLD_64, 2**40 + 5),
    ],
)
async def test_old_pyrogram_layouts_read_as_kurigram_reads_them(
    fmt: str, layout: Layout, user_id: int
) -> None:
    text = base64.urlsafe_b64encode(struct.pack(fmt, 3, True, AUTH_KEY, user_id, True)).decode().rstrip("=")
    loaded = await kurigram_reads(text)
    decoded = codec.decode(text, name="old")
    s = decoded.session
    assert decoded.layout is layout
    assert (
        (s.dc_id, s.test_mode, s.auth_key, s.user_id, s.is_bot)
        == (
            loaded["dc_id"],
            loaded["test_mode"],
            loaded["auth_key"],
            loaded["user_id"],
            loaded["is_bot"],
        )
        == (3, True, AUTH_KEY, user_id, True)
    )
    assert s.api_id is None and decoded.missing == ("api_id",)
    assert (s.server_address, s.port) == ("149.154.175.117", 80)


def test_padded_pyrogram_strings_are_accepted() -> None:
    text = codec.encode_pyrogram(session(dc_id=2, api_id=1, auth_key=AUTH_KEY, user_id=7, is_bot=False))
    padded = text + "=" * (-len(text) % 4)
    assert padded != text
    assert codec.decode(padded, name="p").session.user_id == 7


# -- malformed strings ---------------------------------------------------------------------------------

GOOD_TELETHON = telethon_string(2, "149.154.167.51", 443, AUTH_KEY)
GOOD_PYROGRAM = codec.encode_pyrogram(
    Session(name="g", dc_id=2, api_id=5, auth_key=AUTH_KEY, user_id=9, is_bot=False)
)


def _with_byte(text: str, index: int, value: int, *, telethon: bool) -> str:
    body = text[1:] if telethon else text
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[index] = value
    encoded = base64.urlsafe_b64encode(bytes(raw)).decode()
    return "1" + encoded if telethon else encoded.rstrip("=")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("1abc", "characters long"),
        (GOOD_TELETHON[:-10], "characters long"),
        (GOOD_TELETHON + "AAAA", "characters long"),
        (GOOD_PYROGRAM[:-1], "characters long"),
        ("2" + GOOD_TELETHON[1:], "unknown Telethon session string version '2'"),
        (GOOD_TELETHON[:100] + "!" + GOOD_TELETHON[101:], "not URL-safe base64"),
        (GOOD_TELETHON[:100] + "+" + GOOD_TELETHON[101:], "not URL-safe base64"),
        (GOOD_PYROGRAM[:50] + "é" + GOOD_PYROGRAM[51:], "not URL-safe base64"),
        (GOOD_PYROGRAM + "===", "not URL-safe base64"),
        (GOOD_PYROGRAM + "=", "wrong base64 padding"),
        ("1" + GOOD_TELETHON[1:-1] + "A", "decodes to 264 bytes, expected 263"),
        (_with_byte(GOOD_TELETHON, 0, 0, telethon=True), "dc_id"),
        (_with_byte(GOOD_TELETHON, 0, 200, telethon=True), "dc_id"),
        (_with_byte(GOOD_PYROGRAM, 0, 9, telethon=False), "dc_id"),
        (
            "1"
            + base64.urlsafe_b64encode(
                struct.pack(">B4sH256s", 2, bytes([10, 0, 0, 1]), 0, AUTH_KEY)
            ).decode(),
            "port",
        ),
    ],
)
def test_malformed_strings_raise_invalid_session_string(text: str, problem: str) -> None:
    with pytest.raises(InvalidSessionString) as info:
        codec.decode(text, name="bad")
    assert problem in str(info.value)
    if len(text) > 50:
        assert text.strip() not in str(info.value)
        assert AUTH_KEY.hex() not in str(info.value)


@pytest.mark.parametrize("value", [None, 123, b"1abc", ["x"]])
def test_non_text_raises_invalid_session_string(value: Any) -> None:
    with pytest.raises(InvalidSessionString, match="must be text"):
        codec.decode(value, name="bad")


def test_a_forced_format_must_match() -> None:
    with pytest.raises(InvalidSessionString, match="Pyrogram session string is"):
        codec.decode(GOOD_TELETHON, name="x", format="pyrogram")
    with pytest.raises(InvalidSessionString, match="Telethon session string is"):
        codec.decode(GOOD_PYROGRAM, name="x", format=StringFormat.TELETHON)
    with pytest.raises(InvalidArgument, match="format"):
        codec.decode(GOOD_PYROGRAM, name="x", format="grammers")


def test_a_pyrogram_string_for_an_unknown_dc_is_rejected() -> None:
    text = _with_byte(GOOD_PYROGRAM, 0, 4, telethon=False)  # dc 4 ...
    raw = bytearray(base64.urlsafe_b64decode(text + "=="))
    raw[5] = 1  # ... on the test servers, which have only DCs 1-3
    bad = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(InvalidSessionString, match="not a known test DC"):
        codec.decode(bad, name="x")


# -- encoding needs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["dc_id", "server_address", "port", "auth_key"])
def test_telethon_encoding_names_a_missing_field(missing: str) -> None:
    full = session(dc_id=2, server_address="149.154.167.51", port=443, auth_key=AUTH_KEY)
    with pytest.raises(InvalidArgument) as info:
        codec.encode_telethon(replace(full, **{missing: None}))
    assert info.value.field == missing


@pytest.mark.parametrize("missing", ["dc_id", "api_id", "auth_key", "user_id", "is_bot"])
def test_pyrogram_encoding_names_a_missing_field(missing: str) -> None:
    full = session(dc_id=2, api_id=1, auth_key=AUTH_KEY, user_id=5, is_bot=True)
    with pytest.raises(InvalidArgument) as info:
        codec.encode_pyrogram(replace(full, **{missing: None}))
    assert info.value.field == missing


def test_complete_fills_the_address_from_the_dc_table_and_says_so() -> None:
    bare = session(dc_id=3, test_mode=True, auth_key=AUTH_KEY)
    done = codec.complete(bare, "telethon")
    assert (done.session.server_address, done.session.port) == ("149.154.175.117", 80)
    assert done.filled_from_dc_table == ("server_address", "port")
    assert codec.complete(done.session, "telethon").filled_from_dc_table == ()
    pyro = codec.complete(bare, "pyrogram")
    assert pyro.session.is_bot is False and pyro.assumed == ("is_bot",)
    assert codec.complete(replace(bare, is_bot=True), "pyrogram").assumed == ()


def test_encode_rejects_unknown_formats_and_non_sessions() -> None:
    with pytest.raises(InvalidArgument, match="format"):
        codec.encode(session(dc_id=2), "json")
    with pytest.raises(InvalidArgument, match="session"):
        codec.encode_telethon("not a session")  # type: ignore[arg-type]


# -- properties ------------------------------------------------------------------------------------------

keys = st.binary(min_size=256, max_size=256).filter(any)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    dc_id=st.integers(1, 5),
    address=st.one_of(ipv4, ipv6),
    port=st.integers(1, 65535),
    key=keys,
)
def test_telethon_round_trip(dc_id: int, address: str, port: int, key: bytes) -> None:
    known = dc_table.identify(address)
    assume(known is None or not known.test_mode)  # a test DC's address decodes as test mode
    original = session(dc_id=dc_id, server_address=address, port=port, auth_key=key)
    text = codec.encode_telethon(original)
    assert telethon_reads(text) == (dc_id, original.server_address, port, key)
    assert codec.decode(text, name="s").session == original


@settings(max_examples=150)
@given(
    test_mode=st.booleans(),
    dc_id=st.integers(1, 5),
    api_id=st.integers(1, 2**31 - 1),
    user_id=st.integers(1, 2**63 - 1),
    is_bot=st.booleans(),
    key=st.binary(min_size=256, max_size=256),
)
def test_pyrogram_round_trip(
    test_mode: bool, dc_id: int, api_id: int, user_id: int, is_bot: bool, key: bytes
) -> None:
    assume(not test_mode or dc_id <= 3)
    original = session(
        dc_id=dc_id, api_id=api_id, test_mode=test_mode, auth_key=key, user_id=user_id, is_bot=is_bot
    )
    text = codec.encode_pyrogram(original)
    assert len(text) == 362 and "=" not in text
    decoded = codec.decode(text, name="s").session
    assert {
        f: getattr(decoded, f) for f in ("dc_id", "api_id", "test_mode", "auth_key", "user_id", "is_bot")
    } == {f: getattr(original, f) for f in ("dc_id", "api_id", "test_mode", "auth_key", "user_id", "is_bot")}
    assert codec.encode_pyrogram(decoded) == text


def _only_our_errors(text: Any) -> None:
    """Decoding succeeds or raises InvalidSessionString; anything else fails the test."""
    try:
        codec.decode(text, name="g")
    except InvalidSessionString as error:
        assert isinstance(error, TgPersistError)


@settings(max_examples=300)
@given(st.text())
def test_arbitrary_text_raises_only_invalid_session_string(text: str) -> None:
    _only_our_errors(text)


_alphabet = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/!é ")


@settings(max_examples=300)
@given(
    st.sampled_from([351, 352, 353, 356, 362, 364, 368, 369]).flatmap(
        lambda n: st.text(_alphabet, min_size=n, max_size=n)
    )
)
def test_garbage_of_plausible_length_raises_only_invalid_session_string(text: str) -> None:
    _only_our_errors(text)


@settings(max_examples=300)
@given(
    st.sampled_from([263, 267, 271, 275]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    st.sampled_from(["1", "", "2"]),
    st.booleans(),
)
def test_random_payloads_decode_or_raise_only_invalid_session_string(
    raw: bytes, prefix: str, pad: bool
) -> None:
    encoded = base64.urlsafe_b64encode(raw).decode()
    _only_our_errors(prefix + (encoded if pad else encoded.rstrip("=")))
