"""The adapters are optional: tgpersist imports without any client library, and each adapter says which
extra it needs when its client is missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import aiogram.fsm.storage.base
import pyrogram.storage
import telethon.sessions.abstract

BLOCK_CLIENTS = textwrap.dedent(
    """
    import importlib, sys

    class NotInstalled:
        # Behaves as if telethon, pyrogram and aiogram were not installed.
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in {"telethon", "pyrogram", "aiogram"}:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    """
)


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_CLIENTS + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_tgpersist_imports_without_any_client_library() -> None:
    out = run_python(
        """
        import tgpersist, tgpersist.adapters, tgpersist.store, tgpersist.repositories.files
        import tgpersist.cli
        loaded = sorted({m.partition(".")[0] for m in sys.modules} & {"telethon", "pyrogram", "aiogram"})
        adapters = sorted(m for m in sys.modules if m.startswith("tgpersist.adapters."))
        print(loaded, adapters, tgpersist.SentFile.__name__)
        """
    )
    assert out.split() == ["[]", "[]", "SentFile"]


def test_each_adapter_names_its_extra_when_the_client_is_missing() -> None:
    out = run_python(
        """
        for module, extra in [("telethon", "telethon"), ("pyrogram", "pyrogram"), ("aiogram", "aiogram")]:
            try:
                importlib.import_module("tgpersist.adapters." + module)
            except ImportError as error:
                print(f"pip install 'tgpersist[{extra}]'" in str(error), type(error.__cause__).__name__)
            else:
                print("imported")
        """
    )
    assert out.split() == ["True", "ModuleNotFoundError"] * 3


def test_each_adapter_imports_with_its_client_installed() -> None:
    from tgpersist.adapters.aiogram import TgPersistStorage
    from tgpersist.adapters.pyrogram import PyrogramStorage
    from tgpersist.adapters.telethon import TelethonSession

    assert issubclass(TelethonSession, telethon.sessions.abstract.Session)
    assert issubclass(PyrogramStorage, pyrogram.storage.Storage)
    assert issubclass(TgPersistStorage, aiogram.fsm.storage.base.BaseStorage)
    for cls in (TelethonSession, PyrogramStorage, TgPersistStorage):
        assert not getattr(cls, "__abstractmethods__", None), cls


def test_every_core_module_imports_without_any_client_library() -> None:
    out = run_python(
        """
        import pkgutil, tgpersist
        failed = []
        for module in pkgutil.walk_packages(tgpersist.__path__, "tgpersist."):
            if module.name.startswith("tgpersist.adapters.") or module.name.endswith(".__main__"):
                continue
            try:
                importlib.import_module(module.name)
            except ImportError as error:
                failed.append((module.name, str(error)))
        clients = {m.partition(".")[0] for m in sys.modules} & {"telethon", "pyrogram", "aiogram"}
        print(failed, sorted(clients))
        """
    )
    assert out.strip() == "[] []"
