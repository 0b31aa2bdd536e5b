"""The `tgpersist` command line: `db`, `sessions`, `session`, `import`, `export`, `keys`, `demo`.

Each command group lives in its own module with a `register(subparsers)` function. Every command takes
`--url` (default `TGPERSIST_URL`, else the SQLite file `tgpersist.db`). User errors print one line on
stderr and exit 1; usage errors exit 2; nothing prints a traceback for a user error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from tgpersist.cli import common, db, demo, keys, sessions, transfer
from tgpersist.errors import TgPersistError


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="tgpersist", description="Persistent state for Telegram clients.")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    transfer.register(sub, sessions.register(sub))
    for module in (db, keys, demo):
        module.register(sub)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = asyncio.run(args.handler(args))
    except KeyboardInterrupt:
        common.fail("interrupted")
        return 130
    except (TgPersistError, SQLAlchemyError, OSError) as error:
        common.fail(common.describe(error, getattr(args, "url", None)))
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
