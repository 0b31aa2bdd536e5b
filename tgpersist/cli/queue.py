"""`tgpersist queue stats [NAME] | dead NAME | requeue NAME ID...|--all | purge NAME --dead|--all`."""

from __future__ import annotations

import argparse
from typing import Any

from tgpersist.cli.common import CommandError, add_json, add_url, add_yes, confirm, existing_store
from tgpersist.cli.output import emit_json, seconds, table
from tgpersist.domain import QueueCounts
from tgpersist.store import Store


def register(sub: Any) -> None:
    queue = sub.add_parser("queue", help="see and repair the durable update queues")
    actions = queue.add_subparsers(dest="queue_command", required=True, metavar="ACTION")

    stats = actions.add_parser(
        "stats", help="per account: available, in flight, waiting for a retry, dead, oldest age"
    )
    stats.add_argument("name", nargs="?", help="only this account")
    add_json(stats)
    stats.set_defaults(handler=show_stats)

    dead = actions.add_parser("dead", help="an account's dead letters: id, attempts, last error, when")
    dead.add_argument("name")
    dead.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    add_json(dead)
    dead.set_defaults(handler=show_dead)

    requeue = actions.add_parser("requeue", help="make dead letters available again, attempts reset")
    requeue.add_argument("name")
    which = requeue.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", default=[], metavar="ID", help="the updates to requeue")
    which.add_argument("--all", action="store_true", help="every dead letter of the account")
    requeue.set_defaults(handler=requeue_updates)

    purge = actions.add_parser("purge", help="delete an account's dead letters (or every queued update)")
    purge.add_argument("name")
    scope = purge.add_mutually_exclusive_group(required=True)
    scope.add_argument("--dead", action="store_true", help="delete the dead letters")
    scope.add_argument("--all", action="store_true", help="delete every queued update, in flight or not")
    add_yes(purge)
    purge.set_defaults(handler=purge_updates)

    for name in ("stats", "dead", "requeue", "purge"):
        add_url(actions.choices[name])


async def show_stats(args: argparse.Namespace) -> int:
    async with existing_store(args) as store:
        stats = await store.stats()
    if args.name is not None:
        if args.name not in stats:
            raise CommandError(f"no session named {args.name!r}")
        stats = {args.name: stats[args.name]}
    if args.json:
        emit_json({"queues": [{"session": name, **counts.as_dict()} for name, counts in stats.items()]})
        return 0
    table(
        ("SESSION", "AVAILABLE", "IN-FLIGHT", "RETRY-WAIT", "DEAD", "OLDEST"),
        [_stats_row(name, counts) for name, counts in stats.items()],
    )
    return 0


def _stats_row(name: str, counts: QueueCounts) -> tuple[Any, ...]:
    return (
        name,
        counts.available,
        counts.in_flight,
        counts.retry_wait,
        counts.dead,
        seconds(counts.oldest_age),
    )


async def show_dead(args: argparse.Namespace) -> int:
    async with existing_store(args) as store:
        await _require_session(store, args.name)
        letters = await store.account(args.name).updates.dead_letters(limit=args.limit)
    if args.json:
        emit_json(
            {
                "session": args.name,
                "dead_letters": [
                    {
                        "id": u.id,
                        "attempts": u.attempts,
                        "last_error": u.last_error,
                        "died_at": u.updated_at.isoformat() if u.updated_at else None,
                        "created_at": u.created_at.isoformat() if u.created_at else None,
                        "size": len(u.payload),
                    }
                    for u in letters
                ],
            }
        )
        return 0
    rows = [
        (u.id, u.attempts, u.updated_at.isoformat(timespec="seconds") if u.updated_at else None, u.last_error)
        for u in letters
    ]
    table(("ID", "ATTEMPTS", "DIED", "LAST ERROR"), rows)
    return 0


async def requeue_updates(args: argparse.Namespace) -> int:
    async with existing_store(args) as store:
        await _require_session(store, args.name)
        updates = store.account(args.name).updates
        if args.all:
            print(f"requeued {await updates.requeue_dead()} dead letters of {args.name}")
            return 0
        done = await updates.requeue_many(args.ids)
    print(f"requeued {len(done)} of {len(set(args.ids))} updates of {args.name}")
    missed = sorted(set(args.ids) - set(done))
    if missed:
        raise CommandError(f"not requeued (not queued, or held by a worker now): {', '.join(missed)}")
    return 0


async def purge_updates(args: argparse.Namespace) -> int:
    async with existing_store(args) as store:
        await _require_session(store, args.name)
        updates = store.account(args.name).updates
        counts = await updates.counts()
        if args.dead:
            plan = f"will delete the {counts.dead} dead letters of {args.name}"
        else:
            plan = (
                f"will delete all {counts.pending + counts.dead} queued updates of {args.name}: "
                f"{counts.available} available, {counts.in_flight} in flight, "
                f"{counts.retry_wait} waiting, {counts.dead} dead"
            )
        await confirm(args, plan)
        deleted = await updates.purge(dead_only=args.dead)
    print(f"deleted {deleted} updates of {args.name}")
    return 0


async def _require_session(store: Store, name: str) -> None:
    if name not in await store.list_sessions():
        raise CommandError(f"no session named {name!r}")
