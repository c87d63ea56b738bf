"""The layering the design promises: the core owns its ports and never reaches a backend.

`chat_rescue/bot` imports neither the storage package nor a database driver; the adapters
reach the store only through the core's ports; each port stays small, and holds only what
the running bot calls.
"""

from __future__ import annotations

import ast
from pathlib import Path

import chat_rescue
from chat_rescue.bot import ports

PACKAGE = Path(chat_rescue.__file__).parent
NOT_IN_CORE = ("chat_rescue.storage", "sqlite3", "sqlite_utils", "psycopg", "psycopg_pool")
NOT_IN_ADAPTERS = ("chat_rescue.storage",)
LARGEST_PORT = 6


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, module: str, *, package: bool = False) -> set[str]:
    """Every module `source` imports, as absolute names: at any depth (in a function, under
    TYPE_CHECKING), relative ones resolved against `module`, and `importlib.import_module`
    of a literal name. `from a import b` counts as importing `a` and `a.b`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                # A package's own __init__ is level 1's anchor; a module's is its package.
                anchor = module.split(".")[: len(module.split(".")) - node.level + package]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args \
                and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) \
                and getattr(node.func, "attr", getattr(node.func, "id", "")) \
                in ("import_module", "__import__"):
            found.add(node.args[0].value)
    return found


def breaches(names: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f"{f}.") for f in forbidden))


def offenders(folder: Path, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    files = sorted(folder.rglob("*.py"))
    assert len(files) > 3, f"no modules found under {folder}"
    found = {}
    for path in files:
        names = imported(path.read_text(encoding="utf-8"), module_name(path),
                         package=path.name == "__init__.py")
        if bad := breaches(names, forbidden):
            found[str(path.relative_to(PACKAGE.parent))] = bad
    return found


def test_the_core_imports_no_storage_and_no_database_driver() -> None:
    assert offenders(PACKAGE / "bot", NOT_IN_CORE) == {}, \
        "the core declares ports (bot/ports.py); storage implements them, not the other way"


def test_the_adapters_reach_the_store_only_through_the_cores_ports() -> None:
    assert offenders(PACKAGE / "adapters", NOT_IN_ADAPTERS) == {}


def test_the_check_sees_every_way_of_importing() -> None:
    core = "chat_rescue.bot.service"
    caught = {
        "import chat_rescue.storage.sqlite as sqlite": "chat_rescue.storage.sqlite",
        "from chat_rescue.storage.base import Change": "chat_rescue.storage.base",
        "from chat_rescue import storage": "chat_rescue.storage",
        "from ..storage import sqlite": "chat_rescue.storage.sqlite",
        "from ..storage.base import Store": "chat_rescue.storage.base",
        "def f():\n    import sqlite3": "sqlite3",
        "if TYPE_CHECKING:\n    from chat_rescue.storage.sqlite import SQLiteStore":
            "chat_rescue.storage.sqlite",
        "importlib.import_module('chat_rescue.storage.sqlite')": "chat_rescue.storage.sqlite",
    }
    for source, name in caught.items():
        assert name in breaches(imported(source, core), NOT_IN_CORE), source
    assert "chat_rescue.storage" in imported("from .. import storage", "chat_rescue.bot",
                                             package=True) - {"chat_rescue"}
    allowed = ("from chat_rescue.bot.ports import Store\nfrom . import model\n"
               "import chat_rescue.storagelike\nfrom chat_rescue.bot import sqlite3ish")
    assert breaches(imported(allowed, core), NOT_IN_CORE) == []


def port_protocols() -> dict[str, type]:
    return {name: value for name, value in vars(ports).items()
            if isinstance(value, type) and getattr(value, "_is_protocol", False)
            and value.__module__ == ports.__name__}


def own_methods(protocol: type) -> set[str]:
    return {name for name, value in vars(protocol).items()
            if callable(value) and not name.startswith("_")}


def test_each_port_is_small_and_the_store_is_all_of_them() -> None:
    protocols = port_protocols()
    store = protocols.pop("Store")
    for name, protocol in protocols.items():
        assert 1 <= len(own_methods(protocol)) <= LARGEST_PORT, name
    assert set(store.__mro__) >= set(protocols.values())
    every = set().union(*map(own_methods, protocols.values()))
    assert own_methods(store) == {"close"} and "close" not in every


def called_outside_storage() -> set[str]:
    """Names of the methods called anywhere in the bot proper (not storage/, sandbox/, the
    demo): `x.name(...)`, or passed on as `x.name`."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).parts
        if relative[0] in ("storage", "sandbox") or relative == ("demo.py",):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
    return names


def test_every_port_method_is_used_by_the_running_bot() -> None:
    used = called_outside_storage()
    declared = set().union(*map(own_methods, port_protocols().values()))
    assert declared - used == set(), "only tests use these: keep them off the ports"
