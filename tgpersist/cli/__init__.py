"""The `tgpersist` command line: `db`, `sessions`, `session`, `leases`, `queue`, `import`, `export`,
`keys`, `demo`.

Each command group lives in its own module with a `register(subparsers)` function. Every command takes
`--url` (default `TGPERSIST_URL`, else the SQLite file `tgpersist.db`). Commands that only read never
create a database, schema or table; destructive ones ask first. Exit statuses: see `common.EXIT_CODES`.
User errors print one line on stderr; nothing prints a traceback for a user error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

import tgpersist
from tgpersist.cli import common, db, demo, keys, queue, sessions, transfer
from tgpersist.errors import TgPersistError


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="tgpersist", description="Persistent state for Telegram clients.")
    common.document_exit_codes(root)
    root.add_argument("--version", action="version", version=f"tgpersist {tgpersist.__version__}")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    transfer.register(sub, sessions.register(sub))
    for module in (queue, db, keys, demo):
        module.register(sub)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(keys.attach_key_values(sys.argv[1:] if argv is None else argv))
    try:
        result = asyncio.run(args.handler(args))
    except KeyboardInterrupt:
        common.fail("interrupted")
        return common.EXIT_INTERRUPTED
    except common.CommandError as error:
        common.fail(common.describe(error))
        return error.exit_code
    except (TgPersistError, SQLAlchemyError, OSError) as error:
        common.fail(common.describe(error, getattr(args, "url", None)))
        return common.EXIT_FAILED
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
