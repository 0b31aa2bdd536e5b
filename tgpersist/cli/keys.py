"""`tgpersist keys generate|status|encrypt|rotate|decrypt`: encryption at rest of the stored auth keys.

A key is given as its text (see `tgpersist.encryption`) or as `@FILE`, read from a file so that it does
not show in the process list; `--key` and `--old` default to `$TGPERSIST_ENCRYPTION_KEY`. Each change of
the stored keys is one transaction; on SQLite the file is then compacted so that the old values are gone.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tgpersist.cli.common import CommandError, add_json, add_url, add_yes, confirm, existing_store, shown_url
from tgpersist.cli.output import emit_json
from tgpersist.encryption import ENV_VAR, EncryptionKey, KeyRing
from tgpersist.sql import engines

#: The options whose value is a key. A key's text may start with "-" (URL-safe base64: one key in 64),
#: which argparse reads as an option of its own; `attach_key_values` joins each to its value first.
KEY_OPTIONS = frozenset({"--key", "--old", "--new"})
_KEY_HELP = f"the key as text, or @FILE to read it from a file (default: ${ENV_VAR})"


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="encrypt, rotate or decrypt the stored auth keys")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    actions.add_parser("generate", help="print a new random encryption key").set_defaults(handler=generate)

    status = actions.add_parser("status", help="count the stored auth keys by encryption key id")
    add_json(status)
    add_url(status)
    status.set_defaults(handler=show_status)

    encrypt = actions.add_parser("encrypt", help="encrypt every plaintext auth key, in one transaction")
    encrypt.add_argument("--key", default=None, help=_KEY_HELP)
    add_yes(encrypt)
    add_url(encrypt)
    encrypt.set_defaults(handler=encrypt_keys)

    rotate = actions.add_parser(
        "rotate", help="re-encrypt every auth key from the old key(s) to a new one, in one transaction"
    )
    rotate.add_argument("--old", default=None, help="the key(s) in use, comma-separated; " + _KEY_HELP)
    rotate.add_argument("--new", required=True, help="the key to encrypt with from now on, or @FILE")
    add_yes(rotate)
    add_url(rotate)
    rotate.set_defaults(handler=rotate_keys)

    decrypt = actions.add_parser(
        "decrypt", help="store every auth key in plaintext again, in one transaction"
    )
    decrypt.add_argument("--key", default=None, help=_KEY_HELP)
    add_yes(decrypt)
    add_url(decrypt)
    decrypt.set_defaults(handler=decrypt_keys)


def attach_key_values(argv: Sequence[str]) -> list[str]:
    """`keys ... --new -abc` read as `--new=-abc`: a key option always takes the next argument as its
    value, whatever it starts with (as getopt does for an option with a required argument)."""
    args = list(argv)
    if not args or args[0] != "keys":
        return args
    joined: list[str] = []
    rest = iter(args)
    for arg in rest:
        value = next(rest, None) if arg in KEY_OPTIONS else None
        joined.append(arg if value is None else f"{arg}={value}")
    return joined


def read_key(value: str | None, option: str) -> KeyRing:
    """The key ring an option names: its text, `@FILE`, or (no value) the environment variable."""
    if value is None:
        value = os.environ.get(ENV_VAR, "").strip()
        if not value:
            raise CommandError(f"{option}: no key given and ${ENV_VAR} is not set")
    elif value.startswith("@"):
        value = Path(value[1:]).read_text(encoding="utf-8").strip()
    return KeyRing.parse(value)


async def _change(args: argparse.Namespace, current: KeyRing, target: KeyRing | None, verb: str) -> int:
    """Show what will change and ask, then re-encrypt every auth key in one transaction."""
    async with existing_store(args, encryption_key=current, check_keys=True) as store:
        counts = await store.auth_key_counts()
        total = sum(counts.values())
        await confirm(
            args, f"will {verb} {total} stored auth keys in {shown_url(args.url)}, in one transaction"
        )
        changed = await store.reencrypt_auth_keys(target)
        await engines.compact_sqlite(store.engine)
    return changed


async def generate(args: argparse.Namespace) -> int:
    key = EncryptionKey.generate()
    print(key.export())
    print(f"key id: {key.key_id}", file=sys.stderr)
    return 0


async def show_status(args: argparse.Namespace) -> int:
    async with existing_store(args) as store:
        counts = await store.auth_key_counts()
    ordered = sorted(counts.items(), key=lambda item: (item[0] is not None, item[0] or ""))
    if args.json:
        emit_json({"auth_keys": [{"key_id": key_id, "count": count} for key_id, count in ordered]})
        return 0
    if not counts:
        print("no auth keys stored")
    for key_id, count in ordered:
        print(f"{'plaintext' if key_id is None else 'key id ' + key_id}: {count}")
    return 0


async def encrypt_keys(args: argparse.Namespace) -> int:
    ring = read_key(args.key, "--key")
    changed = await _change(args, ring, ring, f"encrypt (with key id {ring.current_id})")
    print(f"encrypted {changed} auth keys with key id {ring.current_id}")
    return 0


async def rotate_keys(args: argparse.Namespace) -> int:
    old, new = read_key(args.old, "--old"), read_key(args.new, "--new")
    changed = await _change(args, old, new, f"re-encrypt (with key id {new.current_id})")
    print(f"re-encrypted {changed} auth keys with key id {new.current_id}")
    return 0


async def decrypt_keys(args: argparse.Namespace) -> int:
    changed = await _change(args, read_key(args.key, "--key"), None, "decrypt (to plaintext)")
    print(f"decrypted {changed} auth keys: they are stored in plaintext now")
    return 0
