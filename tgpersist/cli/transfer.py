"""Moving sessions in and out: `session export|import` (strings), `import FILE`, `export NAME --out FILE`.

`session export` prints the secret string on stdout and nothing secret anywhere else; remarks (the
warning, fields filled from the DC table or assumed) go to stderr. Imports are one transaction each.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from tgpersist import session_strings
from tgpersist.cli.common import CommandError, add_url, existing_store, open_store
from tgpersist.cli.progress import ProgressLine
from tgpersist.errors import InvalidArgument
from tgpersist.exporters import read_account, write_session_file
from tgpersist.importers import ImportResult, SessionExists, import_session_file, import_session_string

FORMATS = ("telethon", "pyrogram")

SECRET_WARNING = (
    "warning: this session string is a login: whoever has it controls the account. Keep it secret."
)


def register(sub: Any, session_actions: Any) -> None:
    """Add `import` and `export` to `sub`, and `export`/`import` to the `session` group's actions."""
    export_string = session_actions.add_parser(
        "export", help="print a session as a Telethon or Pyrogram session string (a secret!)"
    )
    export_string.add_argument("name")
    export_string.add_argument("--format", choices=FORMATS, required=True)
    export_string.add_argument("--api-id", type=int, help="api id to put in a Pyrogram string if unknown")
    export_string.add_argument("--user-id", type=int, help="user id to put in a Pyrogram string if unknown")
    export_string.add_argument(
        "--bot", action=argparse.BooleanOptionalAction, default=None, help="whether the account is a bot"
    )
    add_url(export_string)
    export_string.set_defaults(handler=export_string_command)

    import_string = session_actions.add_parser("import", help="store a Telethon or Pyrogram session string")
    import_string.add_argument("string", help="the session string, or - to read it from stdin")
    import_string.add_argument("--name", required=True, help="session name to store it as")
    import_string.add_argument("--format", choices=("auto", *FORMATS), default="auto")
    import_string.add_argument("--replace", action="store_true", help="replace an existing session")
    add_url(import_string)
    import_string.set_defaults(handler=import_string_command)

    import_file = sub.add_parser("import", help="import a Telethon or Pyrogram .session file")
    import_file.add_argument("file", type=Path)
    import_file.add_argument("--name", help="session name to store it as (default: the file name)")
    import_file.add_argument("--replace", action="store_true", help="replace an existing session")
    import_file.add_argument("--progress", action="store_true", help="always show the progress")
    add_url(import_file)
    import_file.set_defaults(handler=import_file_command)

    export_file = sub.add_parser("export", help="write a session as a Telethon, Pyrogram or grammers file")
    export_file.add_argument("name")
    export_file.add_argument("--format", choices=(*FORMATS, "grammers"), required=True)
    export_file.add_argument("--out", type=Path, required=True, help="the file to create")
    export_file.add_argument("--force", action="store_true", help="overwrite the file if it exists")
    export_file.add_argument("--progress", action="store_true", help="always show the progress")
    add_url(export_file)
    export_file.set_defaults(handler=export_file_command)


async def export_string_command(args: argparse.Namespace) -> int:
    async with existing_store(args, check_keys=True) as store:
        session = await store.account(args.name).session.load()
    if session is None:
        raise CommandError(f"no session named {args.name!r}")
    overrides = {
        field: value
        for field, value in (("api_id", args.api_id), ("user_id", args.user_id), ("is_bot", args.bot))
        if value is not None
    }
    session = dataclasses.replace(session, **overrides)
    completed = session_strings.complete(session, args.format)
    try:
        text = session_strings.encode(completed.session, args.format)
    except InvalidArgument as error:
        hint = f" (pass --{error.field.replace('_', '-')})" if error.field in ("api_id", "user_id") else ""
        raise CommandError(f"{error}{hint}") from None
    note(SECRET_WARNING)
    if completed.filled_from_dc_table:
        note(f"note: {', '.join(completed.filled_from_dc_table)} taken from the DC table")
    if completed.assumed:
        note(f"note: {', '.join(completed.assumed)} unknown, written as False (use --bot if it is a bot)")
    print(text)
    return 0


async def import_string_command(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.string == "-" else args.string
    format = None if args.format == "auto" else args.format
    async with await open_store(args) as store:
        try:
            result = await import_session_string(store, text, args.name, format=format, replace=args.replace)
        except SessionExists as error:
            raise CommandError(f"a session named {error.name!r} already exists (pass --replace)") from None
    report(result)
    return 0


async def import_file_command(args: argparse.Namespace) -> int:
    name = args.name or args.file.stem
    progress = ProgressLine("peers", force=args.progress)
    try:
        async with await open_store(args) as store:
            result = await import_session_file(
                store, args.file, name, replace=args.replace, progress=progress
            )
    except SessionExists as error:
        raise CommandError(f"a session named {error.name!r} already exists (pass --replace)") from None
    finally:
        progress.close()
    report(result)
    return 0


async def export_file_command(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.force:
        raise CommandError(f"{args.out} already exists (pass --force to overwrite it)")
    progress = ProgressLine("peers", force=args.progress)
    try:
        async with existing_store(args, check_keys=True) as store:
            total = await store.account(args.name).peers.count()
            progress(0, total)  # the peers are read page by page in one transaction, then written
            snapshot = await read_account(store, args.name, lambda done: progress(done, total))
        result = write_session_file(snapshot, args.out, args.format, overwrite=args.force)
        progress(total, total)
    finally:
        progress.close()
    skipped = f", {result.skipped} peers without access hash left out" if result.skipped else ""
    print(f"wrote {result.path} ({result.format}): {result.peers} peers{skipped}")
    if result.filled_from_dc_table:
        note(f"note: {', '.join(result.filled_from_dc_table)} taken from the DC table")
    if result.assumed:
        note(f"note: {', '.join(result.assumed)} unknown, written as False")
    note("warning: the file holds the account's auth key: keep it secret")
    return 0


def report(result: ImportResult) -> None:
    state = ", update state" if result.update_state else ""
    state += f", {result.sent_files} sent files" if result.sent_files else ""
    verb = "replaced" if result.replaced else "imported"
    print(
        f"{verb} {result.name} from {result.source}: {result.peers} peers, "
        f"{result.channels} channel states{state}"
    )
    if result.filled_from_dc_table:
        note(f"note: {', '.join(result.filled_from_dc_table)} taken from the DC table")
    for remark in result.notes:
        note(f"note: {remark}")


def note(message: str) -> None:
    print(message, file=sys.stderr)
