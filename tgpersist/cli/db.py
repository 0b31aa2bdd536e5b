"""`tgpersist db upgrade|downgrade|current|check|history`: the schema, through Alembic."""

from __future__ import annotations

import argparse
from typing import Any

from alembic.script import ScriptDirectory

from tgpersist import migrate
from tgpersist.cli.common import add_url, placement


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="manage the database schema")
    commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = commands.add_parser("upgrade", help="upgrade the schema (default: to head)")
    up.add_argument("revision", nargs="?", default="heads")
    up.set_defaults(handler=upgrade)
    down = commands.add_parser("downgrade", help="downgrade the schema (e.g. -1, base)")
    down.add_argument("revision")
    down.set_defaults(handler=downgrade)
    commands.add_parser("current", help="show the revision the database is at").set_defaults(handler=current)
    commands.add_parser(
        "check", help="exit non-zero unless the schema is at head and matches the models"
    ).set_defaults(handler=check)
    commands.add_parser("history", help="list the revisions").set_defaults(handler=history)
    for name in ("upgrade", "downgrade", "current", "check", "history"):
        add_url(commands.choices[name])


async def upgrade(args: argparse.Namespace) -> int:
    await migrate.upgrade(args.url, args.revision, placement=placement(args))
    print(f"at {', '.join(await migrate.current(args.url, placement=placement(args))) or 'base'}")
    return 0


async def downgrade(args: argparse.Namespace) -> int:
    await migrate.downgrade(args.url, args.revision, placement=placement(args))
    print(f"at {', '.join(await migrate.current(args.url, placement=placement(args))) or 'base'}")
    return 0


async def current(args: argparse.Namespace) -> int:
    revisions = await migrate.current(args.url, placement=placement(args))
    heads = set(migrate.heads())
    for revision in revisions or ("base",):
        print(f"{revision}{' (head)' if revision in heads else ''}")
    return 0


async def check(args: argparse.Namespace) -> int:
    await migrate.check(args.url, placement=placement(args))
    print(f"ok: schema is at {', '.join(migrate.heads())} and matches the models")
    return 0


async def history(args: argparse.Namespace) -> int:
    script = ScriptDirectory.from_config(migrate.config())
    for rev in script.walk_revisions():
        print(f"{rev.revision}: {rev.doc}")
    return 0
