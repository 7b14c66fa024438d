"""The plugin host: one pluggy manager, entry-point group `ftdata`, built-ins loaded the same way."""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

import pluggy

from ftdata import hookspecs

# Built-in plugin modules, loaded even when the package's entry points are not installed (e.g. when
# running from a source tree on PYTHONPATH).
BUILTINS = ("ftdata.stages", "ftdata.synth")


class UnknownPluginObject(KeyError):
    pass


@cache
def manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("ftdata")
    pm.add_hookspecs(hookspecs)
    for name in BUILTINS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a built-in not written yet in this tree
            if exc.name != name:
                raise
            continue
        if not pm.is_registered(module):
            pm.register(module, name)
    pm.load_setuptools_entrypoints("ftdata")
    return pm


def _collect(hook_name: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def register(obj: Any) -> None:
        found[obj.name] = obj

    getattr(manager().hook, hook_name)(register=register)
    return dict(sorted(found.items()))


def stages() -> dict[str, Any]:
    return _collect("register_stages")


def generators() -> dict[str, Any]:
    return _collect("register_generators")


def trainers() -> dict[str, Any]:
    return _collect("register_trainers")


def get(kind: str, name: str) -> Any:
    table = {"stage": stages, "generator": generators, "trainer": trainers}[kind]()
    if name not in table:
        known = ", ".join(table) or "none installed"
        raise UnknownPluginObject(f"unknown {kind} {name!r} (known: {known})")
    return table[name]


def installed() -> list[dict[str, Any]]:
    """What `ftdata plugins` shows: each plugin with its distribution and what it registers."""
    pm = manager()
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda p: p[0]):
        if plugin is None:
            continue
        entry: dict[str, Any] = {"name": name, "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or [])}
        dist = dists.get(id(plugin))
        if dist is not None:
            entry["distribution"] = f"{dist.project_name} {dist.version}"
        else:
            entry["distribution"] = "built-in"
        out.append(entry)
    return out
