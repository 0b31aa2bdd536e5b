"""Encryption at rest of auth keys: AES-256-GCM, each ciphertext bound to its row, keys that rotate.

A `KeyRing` holds the current key (which seals) and older keys (which only open), each known by a key id
that is stored beside every sealed value. The id is derived from the key by a one-way hash, so it is not
secret. The associated data names the table, session, DC and column, so a ciphertext copied to another
row fails to open. `cryptography` (the extra `tgpersist[encryption]`) is imported only when a key is
configured, so a store without encryption needs nothing beyond the core dependencies.

A key is 32 random bytes written as 64 hex digits or base64 (standard or URL-safe, padding optional),
optionally prefixed by an explicit id: `ID:KEY`. `TGPERSIST_ENCRYPTION_KEY` holds one key, or several
separated by commas: the first seals, all of them open (that is how a rotation is rolled out).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from tgpersist.errors import EncryptionError, InvalidArgument

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENV_VAR = "TGPERSIST_ENCRYPTION_KEY"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
#: First byte of every sealed value: the format (AES-256-GCM, 12-byte nonce, JSON associated data).
FORMAT_V1 = b"\x01"
#: Domain separation for derived key ids and for the associated data.
_KEY_ID_CONTEXT = b"tgpersist key id\x00"
_AAD_CONTEXT = "tgpersist/auth-key/v1"
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_FIELD = "encryption_key"
_KEY_FORMAT = "must be 32 bytes written as 64 hex digits or base64, optionally prefixed by 'ID:'"


def _aesgcm_class() -> type[AESGCM]:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise EncryptionError(
            "encrypting auth keys needs the cryptography package: pip install 'tgpersist[encryption]'"
        ) from None
    return AESGCM


def derive_key_id(secret: bytes) -> str:
    """The id of a key when none is given: 16 hex digits of a domain-separated SHA-256 (not secret)."""
    return hashlib.sha256(_KEY_ID_CONTEXT + secret).hexdigest()[:16]


def _decode_secret(text: str) -> bytes:
    text = text.strip()
    if len(text) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise InvalidArgument(_FIELD, _KEY_FORMAT) from None
    padded = text + "=" * (-len(text) % 4)
    alphabet = b"-_" if ("-" in text or "_" in text) else b"+/"
    try:
        secret = base64.b64decode(padded, altchars=alphabet, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(_FIELD, _KEY_FORMAT) from None
    if len(secret) != KEY_BYTES:
        raise InvalidArgument(_FIELD, _KEY_FORMAT)
    return secret


@dataclass(frozen=True, slots=True, repr=False)
class EncryptionKey:
    """One AES-256 key and its id; the repr shows only the id."""

    key_id: str
    secret: bytes = field(compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key_id, str) or not _KEY_ID.fullmatch(self.key_id):
            raise InvalidArgument(_FIELD, "a key id is 1-32 characters of A-Z, a-z, 0-9, '_', '.', '-'")
        if not isinstance(self.secret, bytes) or len(self.secret) != KEY_BYTES:
            raise InvalidArgument(_FIELD, f"a key is exactly {KEY_BYTES} bytes")

    @classmethod
    def from_bytes(cls, secret: bytes | bytearray | memoryview, key_id: str | None = None) -> EncryptionKey:
        if not isinstance(secret, bytes | bytearray | memoryview) or len(secret) != KEY_BYTES:
            raise InvalidArgument(_FIELD, f"a key is exactly {KEY_BYTES} bytes")
        raw = bytes(secret)
        return cls(key_id if key_id is not None else derive_key_id(raw), raw)

    @classmethod
    def parse(cls, text: str) -> EncryptionKey:
        """`KEY` or `ID:KEY`, KEY being 64 hex digits or base64 of 32 bytes."""
        if not isinstance(text, str):
            raise InvalidArgument(_FIELD, f"expected a string, got {type(text).__name__}")
        key_id, sep, encoded = text.strip().rpartition(":")
        return cls.from_bytes(_decode_secret(encoded), key_id if sep else None)

    @classmethod
    def generate(cls) -> EncryptionKey:
        return cls.from_bytes(secrets.token_bytes(KEY_BYTES))

    def export(self) -> str:
        """The key as text `parse` reads back (URL-safe base64; `ID:` only for an explicit id)."""
        encoded = base64.urlsafe_b64encode(self.secret).decode("ascii").rstrip("=")
        return encoded if self.key_id == derive_key_id(self.secret) else f"{self.key_id}:{encoded}"

    def __repr__(self) -> str:
        return f"EncryptionKey(key_id={self.key_id!r})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class KeyLocation:
    """Which stored value a sealed auth key is: its associated data binds the ciphertext to that row.

    A session row is identified by (table, session); a DC row also by `dc_id` and `media_only`.
    """

    table: str
    session: str
    column: str = "auth_key"
    dc_id: int | None = None
    media_only: bool | None = None

    def associated_data(self) -> bytes:
        parts = [_AAD_CONTEXT, self.table, self.session, self.dc_id, self.media_only, self.column]
        return json.dumps(parts, ensure_ascii=True, separators=(",", ":")).encode("ascii")

    def describe(self) -> str:
        where = f"{self.column} of session {self.session!r}"
        if self.dc_id is not None:
            where += f", DC {self.dc_id}{' (media)' if self.media_only else ''}"
        return where


class KeyRing:
    """The current key (seals and opens) and older keys (only open), by key id."""

    def __init__(self, current: EncryptionKey, older: Iterable[EncryptionKey] = ()) -> None:
        aesgcm = _aesgcm_class()
        self.current = current
        self._keys: dict[str, EncryptionKey] = {}
        for key in (current, *older):
            if not isinstance(key, EncryptionKey):
                raise InvalidArgument(_FIELD, f"expected an EncryptionKey, got {type(key).__name__}")
            known = self._keys.get(key.key_id)
            if known is not None and known.secret != key.secret:
                raise InvalidArgument(_FIELD, f"two different keys share the key id {key.key_id!r}")
            self._keys.setdefault(key.key_id, key)
        self._ciphers = {key_id: aesgcm(key.secret) for key_id, key in self._keys.items()}

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """One key, or several separated by commas: the first is current."""
        if not isinstance(text, str):
            raise InvalidArgument(_FIELD, f"expected a string, got {type(text).__name__}")
        parts = [part for part in (p.strip() for p in text.split(",")) if part]
        if not parts:
            raise InvalidArgument(_FIELD, "is empty")
        keys = [EncryptionKey.parse(part) for part in parts]
        return cls(keys[0], keys[1:])

    @property
    def current_id(self) -> str:
        return self.current.key_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    @property
    def keys(self) -> tuple[EncryptionKey, ...]:
        return tuple(self._keys.values())

    def with_older(self, older: Iterable[EncryptionKey]) -> KeyRing:
        """This ring, also able to open values sealed with `older` keys."""
        return KeyRing(self.current, [*self.keys[1:], *(k for k in older if k.key_id not in self._keys)])

    def seal(self, plaintext: bytes, where: KeyLocation) -> tuple[bytes, str]:
        """(stored bytes, key id) of `plaintext` sealed with the current key for `where`."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._ciphers[self.current_id].encrypt(nonce, plaintext, where.associated_data())
        return FORMAT_V1 + nonce + sealed, self.current_id

    def open(self, stored: bytes, key_id: str, where: KeyLocation) -> bytes:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise EncryptionError(
                f"{where.describe()} is encrypted with key id {key_id!r}, which is not among the "
                f"configured keys ({', '.join(self.key_ids)})"
            )
        data = bytes(stored)
        if not data.startswith(FORMAT_V1) or len(data) < 1 + NONCE_BYTES + TAG_BYTES:
            raise EncryptionError(f"{where.describe()} is not a value tgpersist encrypted (unknown format)")
        nonce, sealed = data[1 : 1 + NONCE_BYTES], data[1 + NONCE_BYTES :]
        from cryptography.exceptions import InvalidTag

        try:
            return cipher.decrypt(nonce, sealed, where.associated_data())
        except InvalidTag:
            raise EncryptionError(
                f"{where.describe()} does not decrypt with key id {key_id!r}: wrong key, or the value "
                "was copied from another row or altered"
            ) from None

    def __repr__(self) -> str:
        return f"KeyRing(current={self.current_id!r}, older={list(self.key_ids[1:])!r})"

    __str__ = __repr__


KeySource: TypeAlias = str | bytes | EncryptionKey | KeyRing | Sequence[str | bytes | EncryptionKey]


def _one_key(item: Any) -> list[EncryptionKey]:
    if isinstance(item, EncryptionKey):
        return [item]
    if isinstance(item, bytes | bytearray | memoryview):
        return [EncryptionKey.from_bytes(item)]
    if isinstance(item, str):
        return list(KeyRing.parse(item).keys)
    raise InvalidArgument(_FIELD, f"expected a key string, 32 bytes or a KeyRing, got {type(item).__name__}")


def key_ring(source: KeySource | None) -> KeyRing | None:
    """The ring `source` describes (None: no encryption). Strings may list several keys, comma-separated."""
    if source is None or isinstance(source, KeyRing):
        return source
    if isinstance(source, str | bytes | bytearray | memoryview | EncryptionKey):
        keys = _one_key(source)
    elif isinstance(source, Sequence):
        keys = [key for item in source for key in _one_key(item)]
    else:
        raise InvalidArgument(
            _FIELD, f"expected a key string, 32 bytes or a KeyRing, got {type(source).__name__}"
        )
    if not keys:
        raise InvalidArgument(_FIELD, "is empty")
    return KeyRing(keys[0], keys[1:])


def configured_key_ring(source: KeySource | None, environ: Mapping[str, str] | None = None) -> KeyRing | None:
    """`source` if given, else the keys in `TGPERSIST_ENCRYPTION_KEY`, else None (no encryption)."""
    if source is not None:
        return key_ring(source)
    text = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    return KeyRing.parse(text) if text else None


class AuthKeyCipher:
    """How a store keeps auth keys: sealed with its ring's current key, or plaintext without a ring.

    Every repository of a store shares one cipher, so swapping its `ring` (after a rotation) takes
    effect everywhere at once. A plaintext value stays readable with a ring configured.
    """

    def __init__(self, ring: KeyRing | None = None) -> None:
        self.ring = ring

    @property
    def encrypting(self) -> bool:
        return self.ring is not None

    def seal(self, value: bytes | None, where: KeyLocation) -> tuple[bytes | None, str | None]:
        """(stored bytes, key id or None for plaintext) for the auth key `value`."""
        if value is None or self.ring is None:
            return value, None
        return self.ring.seal(value, where)

    def unseal(self, stored: bytes | None, key_id: str | None, where: KeyLocation) -> bytes | None:
        """The auth key from its stored bytes and key id; EncryptionError if it cannot be opened."""
        if stored is None:
            return None
        if key_id is None:
            return bytes(stored)
        if self.ring is None:
            raise EncryptionError(
                f"{where.describe()} is encrypted (key id {key_id!r}) but no encryption key is configured: "
                f"pass encryption_key= or set {ENV_VAR}"
            )
        return self.ring.open(stored, key_id, where)

    def __repr__(self) -> str:
        return f"AuthKeyCipher({self.ring!r})"
