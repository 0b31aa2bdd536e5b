"""Encryption at rest of auth keys (tgpersist.encryption and its wiring), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import sys
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

import tgpersist
from tests.leakcheck import dump_url, leaks, plaintext_keys_in, secret_forms
from tgpersist import DcAuth, EncryptionError, InvalidArgument, Session
from tgpersist.encryption import (
    ENV_VAR,
    FORMAT_V1,
    AuthKeyCipher,
    EncryptionKey,
    KeyLocation,
    KeyRing,
    configured_key_ring,
    derive_key_id,
    key_ring,
)

SECRET_A = bytes(range(32))
SECRET_B = bytes(range(100, 132))
KEY_A = EncryptionKey.from_bytes(SECRET_A)
KEY_B = EncryptionKey.from_bytes(SECRET_B)
AUTH_1 = bytes((i * 7 + 1) % 256 for i in range(256))
AUTH_2 = bytes((i * 11 + 3) % 256 for i in range(256))
AUTH_3 = bytes((i * 13 + 5) % 256 for i in range(256))
AUTH_4 = bytes((i * 17 + 9) % 256 for i in range(256))
API_HASH = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
ALL_AUTH = (AUTH_1, AUTH_2, AUTH_3, AUTH_4)


def session(name: str, auth_key: bytes | None = AUTH_1) -> Session:
    return Session(name, dc_id=2, api_id=12345, api_hash=API_HASH, auth_key=auth_key, port=443)


async def fill(store: tgpersist.Store) -> None:
    """alice: session key AUTH_1, DC 4 key AUTH_2, DC 4 media key AUTH_3; bob: session key AUTH_4."""
    alice = store.account("alice")
    await alice.session.save(session("alice", AUTH_1))
    await alice.dc_auth.save(DcAuth(4, auth_key=AUTH_2, ipv4="149.154.167.91", port=443))
    await alice.dc_auth.save(DcAuth(4, auth_key=AUTH_3, media_only=True, port=443))
    await alice.dc_auth.save(DcAuth(5))
    await store.account("bob").session.save(session("bob", AUTH_4))


async def expect_filled(store: tgpersist.Store) -> None:
    alice = store.account("alice")
    assert await alice.session.load() == session("alice", AUTH_1)
    assert await alice.dc_auth.load(4) == DcAuth(4, auth_key=AUTH_2, ipv4="149.154.167.91", port=443)
    assert await alice.dc_auth.load(4, media_only=True) == DcAuth(
        4, auth_key=AUTH_3, media_only=True, port=443
    )
    assert await alice.dc_auth.load(5) == DcAuth(5)
    assert [e.auth_key for e in await alice.dc_auth.list()] == [AUTH_2, AUTH_3, None]
    assert await store.account("bob").session.load() == session("bob", AUTH_4)


# -- keys and rings (no database) -------------------------------------------------------------------
class TestKeyFormats:
    @pytest.mark.parametrize(
        "text",
        [
            SECRET_A.hex(),
            SECRET_A.hex().upper(),
            base64.b64encode(SECRET_A).decode(),
            base64.b64encode(SECRET_A).decode().rstrip("="),
            base64.urlsafe_b64encode(SECRET_A).decode(),
            base64.urlsafe_b64encode(SECRET_A).decode().rstrip("="),
            "  " + SECRET_A.hex() + "\n",
        ],
    )
    def test_every_documented_form_parses_to_the_same_key(self, text: str) -> None:
        key = EncryptionKey.parse(text)
        assert key.secret == SECRET_A
        assert key.key_id == derive_key_id(SECRET_A) == KEY_A.key_id

    def test_derived_id_is_sixteen_hex_digits_and_not_a_plain_hash_of_the_key(self) -> None:
        import hashlib

        assert len(KEY_A.key_id) == 16
        assert int(KEY_A.key_id, 16) >= 0
        assert KEY_A.key_id not in hashlib.sha256(SECRET_A).hexdigest()
        assert KEY_A.key_id != KEY_B.key_id

    def test_explicit_id_prefix(self) -> None:
        key = EncryptionKey.parse("prod-2024.1:" + SECRET_A.hex())
        assert (key.key_id, key.secret) == ("prod-2024.1", SECRET_A)
        assert EncryptionKey.parse(key.export()) == key
        assert EncryptionKey.parse(KEY_A.export()) == KEY_A
        assert ":" not in KEY_A.export()

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "not a key",
            SECRET_A.hex()[:-2],
            base64.b64encode(SECRET_A[:31]).decode(),
            base64.b64encode(SECRET_A + b"x").decode(),
            "bad id!:" + SECRET_A.hex(),
            ":" + SECRET_A.hex(),
            "x" * 33 + ":" + SECRET_A.hex(),
            SECRET_A.hex()[:-1] + "g",
        ],
    )
    def test_malformed_keys_raise_invalid_argument_without_the_value(self, text: str) -> None:
        with pytest.raises(InvalidArgument) as info:
            KeyRing.parse(text)
        assert info.value.field == "encryption_key"
        if len(text) > 20:
            assert text.strip() not in str(info.value)
            assert SECRET_A.hex()[:16] not in str(info.value)

    def test_ring_lists_current_then_older_keys(self) -> None:
        ring = KeyRing.parse(f"{KEY_B.export()}, {SECRET_A.hex()}")
        assert ring.current_id == KEY_B.key_id
        assert ring.key_ids == (KEY_B.key_id, KEY_A.key_id)
        assert key_ring([SECRET_B, KEY_A]).key_ids == ring.key_ids  # type: ignore[union-attr]
        assert key_ring(ring) is ring
        assert key_ring(None) is None

    def test_two_different_keys_with_one_id_are_rejected(self) -> None:
        with pytest.raises(InvalidArgument, match="share the key id 'k1'"):
            KeyRing.parse(f"k1:{SECRET_A.hex()},k1:{SECRET_B.hex()}")

    def test_reprs_show_ids_only(self) -> None:
        ring = KeyRing(KEY_A, [KEY_B])
        forms = secret_forms([SECRET_A, SECRET_B])
        for obj in (KEY_A, ring, AuthKeyCipher(ring)):
            assert not leaks(repr(obj) + str(obj), forms)
        assert repr(KEY_A) == f"EncryptionKey(key_id={KEY_A.key_id!r})"
        assert repr(ring) == f"KeyRing(current={KEY_A.key_id!r}, older=[{KEY_B.key_id!r}])"

    def test_environment_variable_is_the_default(self) -> None:
        assert configured_key_ring(None, {}) is None
        assert configured_key_ring(None, {ENV_VAR: "  "}) is None
        ring = configured_key_ring(None, {ENV_VAR: KEY_A.export()})
        assert ring is not None and ring.current_id == KEY_A.key_id
        given = configured_key_ring(SECRET_B, {ENV_VAR: KEY_A.export()})
        assert given is not None and given.current_id == KEY_B.key_id

    def test_sealed_format_and_associated_data(self) -> None:
        ring = KeyRing(KEY_A)
        where = KeyLocation("tgpersist_dc_auth", "alice", dc_id=4, media_only=False)
        stored, key_id = ring.seal(AUTH_1, where)
        assert key_id == KEY_A.key_id
        assert stored[:1] == FORMAT_V1 and len(stored) == 1 + 12 + 256 + 16
        assert AUTH_1 not in stored
        assert ring.open(stored, key_id, where) == AUTH_1
        others = [
            KeyLocation("tgpersist_dc_auth", "alice", dc_id=4, media_only=True),
            KeyLocation("tgpersist_dc_auth", "alice", dc_id=5, media_only=False),
            KeyLocation("tgpersist_dc_auth", "bob", dc_id=4, media_only=False),
            KeyLocation("other_dc_auth", "alice", dc_id=4, media_only=False),
            KeyLocation("tgpersist_dc_auth", "alice", column="other", dc_id=4, media_only=False),
            KeyLocation("tgpersist_sessions", "alice"),
        ]
        for other in others:
            with pytest.raises(EncryptionError, match="copied from another row or altered"):
                ring.open(stored, key_id, other)
        tampered = stored[:-1] + bytes([stored[-1] ^ 1])
        with pytest.raises(EncryptionError, match="altered"):
            ring.open(tampered, key_id, where)
        with pytest.raises(EncryptionError, match="unknown format"):
            ring.open(b"\x02" + stored[1:], key_id, where)
        with pytest.raises(EncryptionError, match="not among the configured keys"):
            ring.open(stored, KEY_B.key_id, where)

    def test_without_cryptography_a_key_is_a_clear_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
        with pytest.raises(EncryptionError, match=r"pip install 'tgpersist\[encryption\]'"):
            KeyRing(KEY_A)
        assert AuthKeyCipher().seal(AUTH_1, KeyLocation("t", "s")) == (AUTH_1, None)


# -- stores ------------------------------------------------------------------------------------------
async def test_encrypted_round_trip_of_session_and_dc_keys(db_url: str) -> None:
    async with await tgpersist.open_store(db_url, encryption_key=KEY_A.export()) as store:
        await fill(store)
        await expect_filled(store)
    async with await tgpersist.open_store(db_url, encryption_key=SECRET_A) as store:
        await expect_filled(store)
        assert await _key_ids(store, "Session") == [KEY_A.key_id, KEY_A.key_id]
        assert await _key_ids(store, "DcAuth") == [KEY_A.key_id, KEY_A.key_id, None]


async def test_raw_database_holds_no_plaintext_key_in_any_column(db_url: str, databases: Any) -> None:
    async with await tgpersist.open_store(db_url, encryption_key=KEY_A.export()) as store:
        await fill(store)
        joined_session = AsyncSession(store.engine)
        async with joined_session, joined_session.begin():
            await store.account("carol", session=joined_session).session.save(session("carol", AUTH_2))
    dumped = await dump_url(db_url)
    assert plaintext_keys_in(dumped, ALL_AUTH) == []
    # ...whereas the same data stored without a key shows (so the scan itself finds keys):
    plain_url = await databases.new()
    async with await tgpersist.open_store(plain_url) as store:
        await fill(store)
    assert sorted(plaintext_keys_in(await dump_url(plain_url), ALL_AUTH)) == [
        "tgpersist_dc_auth: binary",
        "tgpersist_dc_auth: binary",
        "tgpersist_sessions: binary",
        "tgpersist_sessions: binary",
    ]
    async with await tgpersist.open_store(db_url, encryption_key=KEY_A.export()) as store:
        ids = {
            "sessions": await _key_ids(store, "Session"),
            "dc_auth": await _key_ids(store, "DcAuth"),
        }
        assert ids == {"sessions": [KEY_A.key_id] * 3, "dc_auth": [KEY_A.key_id, KEY_A.key_id, None]}
        carol = await store.account("carol").session.load()
        assert carol is not None and carol.auth_key == AUTH_2


async def _key_ids(store: tgpersist.Store, model: str) -> list[str | None]:
    from sqlalchemy import select

    table = store.models.table(getattr(store.models, model))
    async with store.engine.connect() as conn:
        rows = await conn.execute(select(table.c.auth_key_id).order_by(*table.primary_key.columns))
        return [r[0] for r in rows]


async def _copy_key(store: tgpersist.Store, source: dict[str, Any], target: dict[str, Any]) -> None:
    """Copy one row's stored (auth_key, auth_key_id) over another row's, as an attacker with SQL could."""
    from sqlalchemy import select

    def table_of(where: dict[str, Any]) -> Any:
        return store.models.table(store.models.Session if "name" in where else store.models.DcAuth)

    src, dst = table_of(source), table_of(target)
    async with store.engine.begin() as conn:
        stmt = select(src.c.auth_key, src.c.auth_key_id).where(*(src.c[k] == v for k, v in source.items()))
        stored, key_id = (await conn.execute(stmt)).one()
        result = await conn.execute(
            update(dst)
            .where(*(dst.c[k] == v for k, v in target.items()))
            .values(auth_key=stored, auth_key_id=key_id)
        )
        assert result.rowcount == 1


async def test_swapped_ciphertext_fails_to_decrypt(db_url: str) -> None:
    async with await tgpersist.open_store(db_url, encryption_key=KEY_A.export()) as store:
        await fill(store)
        alice, bob = store.account("alice"), store.account("bob")
        # alice's session key into bob's session row
        await _copy_key(store, {"name": "alice"}, {"name": "bob"})
        with pytest.raises(EncryptionError, match="auth_key of session 'bob' does not decrypt") as info:
            await bob.session.load()
        assert not leaks(str(info.value), secret_forms([*ALL_AUTH, SECRET_A]))
        # alice's DC 4 key into her DC 4 media row
        await _copy_key(
            store,
            {"session_name": "alice", "dc_id": 4, "media_only": False},
            {"session_name": "alice", "dc_id": 4, "media_only": True},
        )
        with pytest.raises(EncryptionError, match=r"session 'alice', DC 4 \(media\) does not decrypt"):
            await alice.dc_auth.load(4, media_only=True)
        with pytest.raises(EncryptionError):
            await alice.dc_auth.list()
        # a session key into a DC row of the same session, and a DC key into a session row
        await _copy_key(store, {"name": "alice"}, {"session_name": "alice", "dc_id": 4, "media_only": False})
        with pytest.raises(EncryptionError, match="DC 4 does not decrypt"):
            await alice.dc_auth.load(4)
        await _copy_key(store, {"session_name": "alice", "dc_id": 4, "media_only": True}, {"name": "alice"})
        with pytest.raises(EncryptionError):
            await alice.session.load()


async def test_missing_or_wrong_key_fails_at_open_and_writes_nothing(db_url: str) -> None:
    async with await tgpersist.open_store(db_url, encryption_key=KEY_A.export()) as store:
        await fill(store)
    before = await dump_url(db_url)
    with pytest.raises(EncryptionError, match="no encryption key is configured"):
        await tgpersist.open_store(db_url)
    with pytest.raises(EncryptionError, match=f"key id '{KEY_A.key_id}', which is not among"):
        await tgpersist.open_store(db_url, encryption_key=SECRET_B)
    # The right id with the wrong key material: caught by a trial decryption at open.
    impostor = EncryptionKey(KEY_A.key_id, SECRET_B)
    with pytest.raises(EncryptionError, match="does not decrypt"):
        await tgpersist.open_store(db_url, encryption_key=impostor)
    assert await dump_url(db_url) == before


async def test_embedded_store_without_the_key_fails_on_load_and_writes_nothing(db_url: str) -> None:
    async with await tgpersist.open_store(db_url, encryption_key=KEY_A.export()) as store:
        await fill(store)
    before = await dump_url(db_url)
    engine = tgpersist.create_engine(db_url)
    try:
        store = tgpersist.Store(engine)  # no open-time check on this path
        with pytest.raises(EncryptionError, match="no encryption key is configured"):
            await store.account("alice").session.load()
        with pytest.raises(EncryptionError):
            await store.account("alice").dc_auth.list()
        with pytest.raises(EncryptionError):
            await store.check_encryption()
        wrong = tgpersist.Store(engine, encryption_key=SECRET_B)
        with pytest.raises(EncryptionError, match="not among the configured keys"):
            await wrong.account("bob").session.load()
    finally:
        await engine.dispose()
    assert await dump_url(db_url) == before


async def test_plaintext_stays_readable_and_new_saves_are_encrypted(db_url: str) -> None:
    async with await tgpersist.open_store(db_url) as store:
        await fill(store)
    async with await tgpersist.open_store(db_url, encryption_key=KEY_A.export()) as store:
        await expect_filled(store)
        assert await _key_ids(store, "Session") == [None, None]
        await store.account("alice").session.save(session("alice", AUTH_1))
        await store.account("alice").dc_auth.save(DcAuth(4, auth_key=AUTH_2, ipv4="149.154.167.91", port=443))
        assert await _key_ids(store, "Session") == [KEY_A.key_id, None]
        assert await _key_ids(store, "DcAuth") == [KEY_A.key_id, None, None]
        await expect_filled(store)
    with pytest.raises(EncryptionError):  # one value is sealed now
        await tgpersist.open_store(db_url)


async def test_environment_key_is_used_by_open_store(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, f"{KEY_B.export()},{KEY_A.export()}")
    async with await tgpersist.open_store(db_url) as store:
        await fill(store)
        assert await _key_ids(store, "Session") == [KEY_B.key_id, KEY_B.key_id]
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(EncryptionError):
        await tgpersist.open_store(db_url)
    async with await tgpersist.open_store(db_url, encryption_key=SECRET_B) as store:
        await expect_filled(store)


async def test_older_keys_open_and_the_current_key_seals(db_url: str) -> None:
    async with await tgpersist.open_store(db_url, encryption_key=SECRET_A) as store:
        await fill(store)
    async with await tgpersist.open_store(db_url, encryption_key=[SECRET_B, SECRET_A]) as store:
        await expect_filled(store)
        await store.account("bob").session.save(session("bob", AUTH_4))
        assert await _key_ids(store, "Session") == [KEY_A.key_id, KEY_B.key_id]
    with pytest.raises(EncryptionError):
        await tgpersist.open_store(db_url, encryption_key=SECRET_A)  # bob's key needs B now


async def test_reencrypt_rotates_every_key_in_one_go(db_url: str) -> None:
    async with await tgpersist.open_store(db_url, encryption_key=SECRET_A) as store:
        await fill(store)
        account = store.account("alice")  # obtained before the rotation: follows it
        assert await store.reencrypt_auth_keys(SECRET_B) == 4
        assert await _key_ids(store, "DcAuth") == [KEY_B.key_id, KEY_B.key_id, None]
        await account.session.save(session("alice", AUTH_1))
        assert await _key_ids(store, "Session") == [KEY_B.key_id, KEY_B.key_id]
        assert await store.reencrypt_auth_keys(SECRET_B) == 0  # already done
        await expect_filled(store)
    with pytest.raises(EncryptionError, match="not among the configured keys"):
        await tgpersist.open_store(db_url, encryption_key=SECRET_A)
    async with await tgpersist.open_store(db_url, encryption_key=SECRET_B) as store:
        await expect_filled(store)
        assert await store.reencrypt_auth_keys(None) == 4
        assert await _key_ids(store, "Session") == [None, None]
    assert plaintext_keys_in(await dump_url(db_url), ALL_AUTH) != []
    async with await tgpersist.open_store(db_url) as store:
        await expect_filled(store)


async def test_reencrypt_is_all_or_nothing(db_url: str) -> None:
    async with await tgpersist.open_store(db_url, encryption_key=SECRET_A) as store:
        await fill(store)
        await _copy_key(store, {"name": "alice"}, {"name": "bob"})  # one bad row
        before = await dump_url(db_url)
        with pytest.raises(EncryptionError, match="session 'bob'"):
            await store.reencrypt_auth_keys(SECRET_B)
        assert await dump_url(db_url) == before
        assert store.cipher.ring is not None and store.cipher.ring.current_id == KEY_A.key_id


async def test_prefix_is_part_of_the_binding(db_url: str) -> None:
    async with await tgpersist.open_store(db_url, encryption_key=SECRET_A) as ours:
        await ours.account("alice").session.save(session("alice", AUTH_1))
    async with await tgpersist.open_store(db_url, encryption_key=SECRET_A, prefix="other_") as other:
        await other.account("alice").session.save(session("alice", AUTH_2))
        async with other.engine.begin() as conn:
            ours_t = tgpersist.models.declare_models().table(tgpersist.models.declare_models().Session)
            other_t = other.models.table(other.models.Session)
            from sqlalchemy import select

            stored, key_id = (await conn.execute(select(ours_t.c.auth_key, ours_t.c.auth_key_id))).one()
            await conn.execute(update(other_t).values(auth_key=stored, auth_key_id=key_id))
        with pytest.raises(EncryptionError, match="does not decrypt"):
            await other.account("alice").session.load()
