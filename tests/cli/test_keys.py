"""`tgpersist keys generate|status|encrypt|rotate|decrypt`, on SQLite and PostgreSQL.

Commands run in-process, in a worker thread (`main` owns its event loop).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine.url import make_url

import tgpersist
from tests.cli.run import cli
from tests.leakcheck import dump_url, leaks, plaintext_keys_in, secret_forms
from tests.test_encryption import ALL_AUTH, KEY_A, KEY_B, SECRET_A, SECRET_B, expect_filled, fill
from tgpersist import EncryptionError
from tgpersist.encryption import ENV_VAR, EncryptionKey


async def filled(url: str, key: object = None) -> None:
    async with await tgpersist.open_store(url, encryption_key=key) as store:  # type: ignore[arg-type]
        await fill(store)


async def readable_with(url: str, key: object) -> bool:
    """Whether a store opens with exactly `key` and every stored auth key loads."""
    try:
        async with await tgpersist.open_store(url, encryption_key=key) as store:  # type: ignore[arg-type]
            await expect_filled(store)
    except EncryptionError:
        return False
    return True


def sqlite_file_bytes(url: str) -> bytes:
    """The database file and its -wal/-shm companions, as SQLite left them on disk."""
    path = Path(make_url(url).database or "")
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


@pytest.fixture(autouse=True)
def no_environment_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


async def test_generate_prints_a_fresh_key_and_its_id(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = await cli(capsys, "keys", "generate")
    assert status == 0
    key = EncryptionKey.parse(out.strip())
    assert out == key.export() + "\n"
    assert err == f"key id: {key.key_id}\n"
    _, again, _ = await cli(capsys, "keys", "generate")
    assert again != out


async def test_status_counts_keys_by_key_id(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    status, out, err = await cli(capsys, "keys", "status", "--url", db_url)
    assert (status, out) == (2, "") and err.endswith("`tgpersist db upgrade`\n")
    await tgpersist.migrate.upgrade(db_url)
    assert await cli(capsys, "keys", "status", "--url", db_url) == (0, "no auth keys stored\n", "")
    await filled(db_url)
    assert await cli(capsys, "keys", "status", "--url", db_url) == (0, "plaintext: 4\n", "")
    async with await tgpersist.open_store(db_url, encryption_key=SECRET_A) as store:
        await store.account("alice").session.save(await store.account("alice").session.load())  # type: ignore[arg-type]
    assert await cli(capsys, "keys", "status", "--url", db_url) == (
        0,
        f"plaintext: 3\nkey id {KEY_A.key_id}: 1\n",
        "",
    )


async def test_encrypt_converts_a_plaintext_database(
    capsys: pytest.CaptureFixture[str], db_url: str, backend: str
) -> None:
    await filled(db_url)
    assert plaintext_keys_in(await dump_url(db_url), ALL_AUTH) != []
    status, out, err = await cli(capsys, "keys", "encrypt", "--yes", "--key", KEY_A.export(), "--url", db_url)
    assert (status, out) == (0, f"encrypted 4 auth keys with key id {KEY_A.key_id}\n")
    assert (
        err
        == f"will encrypt (with key id {KEY_A.key_id}) 4 stored auth keys in {db_url}, in one transaction\n"
    )
    assert plaintext_keys_in(await dump_url(db_url), ALL_AUTH) == []
    if backend == "sqlite":  # compacted: the overwritten plaintext is gone from the files, too
        on_disk = sqlite_file_bytes(db_url)
        assert not any(key[:32] in on_disk for key in ALL_AUTH)
    assert await cli(capsys, "keys", "status", "--url", db_url) == (0, f"key id {KEY_A.key_id}: 4\n", "")
    assert await readable_with(db_url, SECRET_A)
    assert not await readable_with(db_url, None)
    again = await cli(capsys, "keys", "encrypt", "--yes", "--key", KEY_A.export(), "--url", db_url)
    assert again[:2] == (0, f"encrypted 0 auth keys with key id {KEY_A.key_id}\n")


async def test_encrypt_takes_the_key_from_the_environment_or_a_file(
    capsys: pytest.CaptureFixture[str], db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await filled(db_url)
    status, _, err = await cli(capsys, "keys", "encrypt", "--yes", "--url", db_url)
    assert (status, err) == (1, f"tgpersist: error: --key: no key given and ${ENV_VAR} is not set\n")
    monkeypatch.setenv(ENV_VAR, SECRET_A.hex())
    status, out, _ = await cli(capsys, "keys", "encrypt", "--yes", "--url", db_url)
    assert (status, out) == (0, f"encrypted 4 auth keys with key id {KEY_A.key_id}\n")
    key_file = tmp_path / "new.key"
    key_file.write_text(KEY_B.export() + "\n")
    status, out, _ = await cli(capsys, "keys", "rotate", "--yes", "--new", f"@{key_file}", "--url", db_url)
    assert (status, out) == (0, f"re-encrypted 4 auth keys with key id {KEY_B.key_id}\n")
    assert await readable_with(db_url, SECRET_B)


async def test_rotate_leaves_every_key_readable_with_the_new_key_only(
    capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    await filled(db_url, SECRET_A)
    status, out, err = await cli(
        capsys, "keys", "rotate", "--yes", "--old", KEY_A.export(), "--new", KEY_B.export(), "--url", db_url
    )
    assert (status, out) == (0, f"re-encrypted 4 auth keys with key id {KEY_B.key_id}\n")
    assert err.startswith("will re-encrypt")
    assert await readable_with(db_url, SECRET_B)
    assert not await readable_with(db_url, SECRET_A)
    assert plaintext_keys_in(await dump_url(db_url), ALL_AUTH) == []


async def test_rotate_accepts_several_old_keys_and_plaintext_rows(
    capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    await filled(db_url)  # plaintext
    async with await tgpersist.open_store(db_url, encryption_key=SECRET_A) as store:
        alice = store.account("alice")
        await alice.session.save(await alice.session.load())  # type: ignore[arg-type]
    third = EncryptionKey.generate()
    status, out, _ = await cli(
        capsys,
        "keys",
        "rotate",
        "--yes",
        f"--old={KEY_B.export()},{KEY_A.export()}",
        f"--new={third.export()}",
        "--url",
        db_url,
    )
    assert (status, out) == (0, f"re-encrypted 4 auth keys with key id {third.key_id}\n")
    assert await cli(capsys, "keys", "status", "--url", db_url) == (0, f"key id {third.key_id}: 4\n", "")
    assert await readable_with(db_url, third)


async def test_a_key_that_starts_with_a_dash_is_the_value_of_its_option(
    capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    dash = EncryptionKey.from_bytes(b"\xf8" + bytes(range(31)))  # top six bits 62: "-" in URL-safe base64
    assert dash.export().startswith("-")
    await filled(db_url, SECRET_A)
    status, out, _ = await cli(
        capsys, "keys", "rotate", "--yes", "--old", KEY_A.export(), "--new", dash.export(), "--url", db_url
    )
    assert (status, out) == (0, f"re-encrypted 4 auth keys with key id {dash.key_id}\n")
    assert await readable_with(db_url, dash)
    status, out, _ = await cli(capsys, "keys", "decrypt", "--key", dash.export(), "--yes", "--url", db_url)
    assert (status, out) == (0, "decrypted 4 auth keys: they are stored in plaintext now\n")
    assert await readable_with(db_url, None)


async def test_rotate_with_a_wrong_old_key_fails_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    await filled(db_url, SECRET_A)
    before = await dump_url(db_url)
    status, out, err = await cli(
        capsys, "keys", "rotate", "--yes", "--old", KEY_B.export(), "--new", KEY_B.export(), "--url", db_url
    )
    assert (status, out) == (1, "")
    assert err.startswith("tgpersist: error: auth_key of session 'alice' is encrypted with key id ")
    impostor = f"{KEY_A.key_id}:{SECRET_B.hex()}"  # the right id, the wrong key
    status, _, err = await cli(
        capsys, "keys", "rotate", "--yes", "--old", impostor, "--new", KEY_B.export(), "--url", db_url
    )
    assert status == 1 and "does not decrypt" in err
    assert not leaks(err, secret_forms([*ALL_AUTH, SECRET_A, SECRET_B]))
    assert await dump_url(db_url) == before


async def test_decrypt_returns_to_plaintext(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    await filled(db_url, SECRET_A)
    status, out, _ = await cli(capsys, "keys", "decrypt", "--yes", "--key", SECRET_A.hex(), "--url", db_url)
    assert (status, out) == (0, "decrypted 4 auth keys: they are stored in plaintext now\n")
    assert await readable_with(db_url, None)
    assert await cli(capsys, "keys", "status", "--url", db_url) == (0, "plaintext: 4\n", "")


async def test_a_malformed_key_is_a_one_line_error_without_the_key(
    capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    await filled(db_url)
    bad = SECRET_A.hex()[:-3] + "xyz"
    status, out, err = await cli(capsys, "keys", "encrypt", "--yes", "--key", bad, "--url", db_url)
    assert (status, out) == (1, "")
    assert err == (
        "tgpersist: error: encryption_key: must be 32 bytes written as 64 hex digits or base64, "
        "optionally prefixed by 'ID:'\n"
    )
    assert await cli(capsys, "keys", "status", "--url", db_url) == (0, "plaintext: 4\n", "")
