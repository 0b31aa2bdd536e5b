"""Run inside a venv with the original Pyrogram: importing the adapter raises one clear ImportError."""

from __future__ import annotations

import json

try:
    import tgpersist.adapters.pyrogram  # noqa: F401
except ImportError as error:
    report = {"error": type(error).__name__, "message": str(error), "chained": error.__cause__ is not None}
else:
    report = {"error": None}
print(json.dumps(report))
