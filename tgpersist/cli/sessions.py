"""`tgpersist sessions list`, `tgpersist session show|delete NAME` and `tgpersist leases`."""

from __future__ import annotations

import argparse
from typing import Any

from tgpersist.cli.common import CommandError, add_json, add_url, add_yes, confirm, existing_store
from tgpersist.cli.output import emit_json, seconds, table
from tgpersist.clock import utcnow
from tgpersist.domain import Session, SessionSummary

SUMMARY_HEADERS = (
    "NAME", "DC", "USER", "USERNAME", "LEASE", "EXPIRES", "PEERS",
    "AVAIL", "IN-FLIGHT", "WAIT", "DEAD", "UPDATED",
)  # fmt: skip


def register(sub: Any) -> Any:
    """Add `sessions`, `session` and `leases`; returns the `session` group's actions, for `transfer`."""
    group = sub.add_parser("sessions", help="list stored sessions")
    actions = group.add_subparsers(dest="sessions_command", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list", help="every session: DC, user, lease holder, peers, queue counts, last change"
    )
    add_json(listing)
    add_url(listing)
    listing.set_defaults(handler=list_sessions)

    leases = sub.add_parser("leases", help="the sessions whose lease is held now: owner, token, expiry")
    add_json(leases)
    add_url(leases)
    leases.set_defaults(handler=list_leases)

    session = sub.add_parser("session", help="inspect or manage one session")
    actions = session.add_subparsers(dest="session_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="show a session (never its auth key)")
    show.add_argument("name")
    add_url(show)
    show.set_defaults(handler=show_session)
    delete = actions.add_parser("delete", help="delete a session and every row scoped to it")
    delete.add_argument("name")
    add_yes(delete)
    add_url(delete)
    delete.set_defaults(handler=delete_session)
    return actions


def _expires_in(summary: SessionSummary) -> float | None:
    if summary.lease_expires_at is None:
        return None
    return max(0.0, (summary.lease_expires_at - utcnow()).total_seconds())


def _lease_column(summary: SessionSummary) -> str | None:
    if summary.lease_problem is not None:
        return f"unreadable lease ({summary.lease_problem}; the next acquire takes it over)"
    return summary.lease_owner


async def list_sessions(args: argparse.Namespace) -> int:
    async with existing_store(args) as store:
        summaries = await store.session_summaries()
    if args.json:
        emit_json({"sessions": [s.as_dict() for s in summaries]})
        return 0
    rows = [
        (
            s.name,
            s.dc_id,
            s.user_id,
            f"@{s.username}" if s.username else None,
            _lease_column(s),
            seconds(_expires_in(s)) if s.lease_expires_at else None,
            s.peers,
            s.queue.available,
            s.queue.in_flight,
            s.queue.retry_wait,
            s.queue.dead,
            s.updated_at.isoformat(timespec="seconds") if s.updated_at else None,
        )
        for s in summaries
    ]
    table(SUMMARY_HEADERS, rows)
    return 0


async def list_leases(args: argparse.Namespace) -> int:
    async with existing_store(args) as store:
        leases = await store.leases()
    if args.json:
        emit_json(
            {
                "leases": [
                    {
                        "session": name,
                        "owner": info.owner,
                        "token": info.token,
                        "expires_at": info.expires_at.isoformat(),
                        "expires_in": round(left, 3),
                    }
                    for name, info, left in leases
                ]
            }
        )
        return 0
    rows = [(name, info.owner, info.token, seconds(left)) for name, info, left in leases]
    table(("SESSION", "OWNER", "TOKEN", "EXPIRES IN"), rows)
    return 0


def _fields(session: Session, summary: SessionSummary | None) -> list[tuple[str, Any]]:
    """What `session show` prints, in order: never the auth key or api hash, only whether they are set."""
    fields: list[tuple[str, Any]] = [("name", session.name)]
    for name in ("dc_id", "server_address", "port", "test_mode", "api_id", "user_id", "is_bot"):
        fields.append((name, getattr(session, name)))
    for name in ("first_name", "last_name", "username", "date", "takeout_id"):
        fields.append((name, getattr(session, name)))
    fields.append(("auth_key", "<set, 256 bytes>" if session.auth_key else "<none>"))
    fields.append(("api_hash", "<set>" if session.api_hash else "<none>"))
    if summary is not None:
        fields.append(("peers", summary.peers))
        queue = summary.queue
        fields.append(
            (
                "queue",
                f"{queue.available} available, {queue.in_flight} in flight, "
                f"{queue.retry_wait} waiting, {queue.dead} dead",
            )
        )
        lease = "free"
        if summary.lease_problem is not None:
            lease = _lease_column(summary) or lease
        elif summary.lease_owner is not None and summary.lease_expires_at is not None:
            until = summary.lease_expires_at.isoformat(timespec="seconds")
            lease = f"held by {summary.lease_owner} until {until} (token {summary.lease_token})"
        fields.append(("lease", lease))
    return fields


async def show_session(args: argparse.Namespace) -> int:
    async with existing_store(args, check_keys=True) as store:
        account = store.account(args.name)
        session = await account.session.load()
        if session is None:
            raise CommandError(f"no session named {args.name!r}")
        summary = next((s for s in await store.session_summaries() if s.name == args.name), None)
        fields = _fields(session, summary)
        fields.append(("dc_auth", len(await account.dc_auth.list())))
        state = await account.updates.load_state()
        fields.append(("update_state", state if state else "-"))
        fields.append(("channels", len(await account.updates.list_channels())))
        fields.append(("created_at", session.created_at))
        fields.append(("updated_at", session.updated_at))
    width = max(len(name) for name, _ in fields) + 2
    for name, value in fields:
        print(f"{name + ':':<{width}}{value}")
    return 0


async def delete_session(args: argparse.Namespace) -> int:
    async with existing_store(args) as store:
        summary = next((s for s in await store.session_summaries() if s.name == args.name), None)
        if summary is None:
            raise CommandError(f"no session named {args.name!r}")
        await confirm(
            args,
            f"will delete session {args.name!r} and every row scoped to it: its auth keys, "
            f"{summary.peers} peers, {summary.queue.pending + summary.queue.dead} queued updates, "
            "its update state, dedup keys and conversations",
        )
        if not await store.account(args.name).session.delete():
            raise CommandError(f"no session named {args.name!r}")
        print(f"deleted {args.name}")
    return 0
