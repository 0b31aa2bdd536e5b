"""`tgpersist db upgrade|downgrade|current|check|history`: the schema, through Alembic.

Only `upgrade` creates anything; `current` and `check` on a missing database exit 2, and `downgrade`
says which revisions it will undo (and, to base, how many sessions it will drop) and asks first.
"""

from __future__ import annotations

import argparse
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import func, select

from tgpersist import migrate
from tgpersist.cli.common import (
    CommandError,
    add_json,
    add_url,
    add_yes,
    confirm,
    placement,
    require_database_file,
    require_tables,
    shown_url,
)
from tgpersist.cli.output import emit_json
from tgpersist.models import declare_models
from tgpersist.sql import engines


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="manage the database schema")
    commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = commands.add_parser("upgrade", help="create or upgrade the schema (default: to head)")
    up.add_argument("revision", nargs="?", default="heads")
    up.set_defaults(handler=upgrade)
    down = commands.add_parser("downgrade", help="downgrade the schema (e.g. -1; base drops every table)")
    down.add_argument("revision")
    add_yes(down)
    down.set_defaults(handler=downgrade)
    commands.add_parser("current", help="show the revision the database is at").set_defaults(handler=current)
    commands.add_parser(
        "check", help="exit non-zero unless the schema is at head and matches the models"
    ).set_defaults(handler=check)
    history = commands.add_parser("history", help="list the revisions")
    add_json(history)
    history.set_defaults(handler=show_history)
    for name in ("upgrade", "downgrade", "current", "check", "history"):
        add_url(commands.choices[name])


async def _revisions(args: argparse.Namespace) -> tuple[str, ...]:
    """The revisions of an existing, migrated database (exit 2 otherwise), read without creating."""
    require_database_file(args.url)
    engine = engines.create_engine(args.url)
    try:
        return await require_tables(engine, args)
    finally:
        await engine.dispose()


async def _count_sessions(args: argparse.Namespace) -> int:
    """How many sessions the database holds, at whatever revision it is (the table is in every one)."""
    models = declare_models(placement(args))
    count = select(func.count()).select_from(models.table(models.Session))
    return await migrate.in_transaction(
        args.url, lambda conn: int(conn.execute(count).scalar_one()), write=False
    )


async def upgrade(args: argparse.Namespace) -> int:
    await migrate.upgrade(args.url, args.revision, placement=placement(args))
    print(f"at {', '.join(await migrate.current(args.url, placement=placement(args))) or 'base'}")
    return 0


async def downgrade(args: argparse.Namespace) -> int:
    now = await _revisions(args)
    undone = _undone(now, args.revision)
    plan = f"will downgrade {shown_url(args.url)} from {', '.join(now)} to {args.revision}"
    plan += f", undoing {', '.join(undone)}" if undone else " (nothing to undo)"
    if args.revision == "base":
        count = await _count_sessions(args)
        plan += f": this DROPS every tgpersist table, with the {count} sessions and their auth keys in them"
    await confirm(args, plan)
    await migrate.downgrade(args.url, args.revision, placement=placement(args))
    print(f"at {', '.join(await migrate.current(args.url, placement=placement(args))) or 'base'}")
    return 0


def _undone(current: tuple[str, ...], target: str) -> list[str]:
    """The revisions a downgrade from `current` to `target` (`base`, `-N` or an id) undoes, newest first."""
    script = ScriptDirectory.from_config(migrate.config())
    applied = [rev.revision for rev in script.iterate_revisions(current, "base")]
    if target == "base":
        return applied
    if target.startswith("-") and target[1:].isdigit():
        return applied[: int(target[1:])]
    try:
        kept = {rev.revision for rev in script.iterate_revisions(target, "base")}
    except Exception:  # alembic raises several resolution errors for ids it does not know
        raise CommandError(f"unknown revision {target!r} (see `tgpersist db history`)") from None
    return [revision for revision in applied if revision not in kept]


async def current(args: argparse.Namespace) -> int:
    revisions = await _revisions(args)
    heads = set(migrate.heads())
    for revision in revisions:
        print(f"{revision}{' (head)' if revision in heads else ''}")
    return 0


async def check(args: argparse.Namespace) -> int:
    await _revisions(args)
    await migrate.check(args.url, placement=placement(args))
    print(f"ok: schema is at {', '.join(migrate.heads())} and matches the models")
    return 0


async def show_history(args: argparse.Namespace) -> int:
    script = ScriptDirectory.from_config(migrate.config())
    heads = set(script.get_heads())
    revisions = list(script.walk_revisions())
    if args.json:
        emit_json(
            {
                "revisions": [
                    {
                        "revision": r.revision,
                        "down_revision": r.down_revision,
                        "doc": r.doc,
                        "head": r.revision in heads,
                    }
                    for r in revisions
                ]
            }
        )
        return 0
    for rev in revisions:
        print(f"{rev.revision}: {rev.doc}")
    return 0
