"""Ops from installed packages: the `zoo.ops` entry-point group.

A plugin distribution declares one entry point per op, named by the op's tag and pointing at an `Op`
subclass (see examples/zoo-plugin-example):

    [project.entry-points."zoo.ops"]
    pixel_norm = "zoo_example_ops.pixel_norm:PixelNorm"

The class is checked as a built-in op would be, then registered; from then on it is validated,
shape-checked, exported in `zoo schema`, listed by `zoo list --ops` and covered by the registry-wide
op tests like any built-in op. A spec still names only op tags, never code: what runs is what the user
installed. A plugin that fails to load is skipped with a warning naming the distribution and the fix;
a spec that uses one of its ops then fails as an unknown op whose hint says why. ZOO_NO_PLUGINS=1
skips every plugin (to rule one out).
"""
from __future__ import annotations

import contextlib
import inspect
import os
import re
import warnings
from importlib import metadata
from typing import TYPE_CHECKING, Any, Iterable, Iterator, get_args

if TYPE_CHECKING:  # pragma: no cover
    from biggan_zoo.compiler.ops.base import Op


GROUP = "zoo.ops"
_TAG = re.compile(r"^[a-z][a-z0-9_]*$")

ORIGIN: dict[str, str] = {}
"""Where each registered op comes from: 'builtin' or 'plugin <distribution> <version>'."""

FAILED: dict[str, str] = {}
"""Entry-point name -> why it was not registered (shown with warnings and in unknown-op hints)."""


class PluginWarning(UserWarning):
    """A plugin op that could not be registered."""


class PluginError(Exception):
    """Why one entry point's class is not a usable op."""


def _check_name(name: str) -> None:
    from biggan_zoo.compiler.ops.base import REGISTRY  # not at the top: compiler.ops imports this module

    if not _TAG.match(name):
        raise PluginError(f"op tag '{name}' must be lower case letters, digits and _, starting with a letter")
    if name in REGISTRY:
        raise PluginError(f"op '{name}' is already registered by {ORIGIN.get(name, 'builtin')}; rename the op")


def _check(name: str, obj: Any) -> type["Op"]:
    """The entry point's object if it is a well-formed op class for tag `name`."""
    from biggan_zoo.compiler.ops.base import Op

    if not (inspect.isclass(obj) and issubclass(obj, Op)) or obj is Op:
        raise PluginError(f"points at {obj!r}, not a subclass of biggan_zoo.compiler.ops.Op")
    field = obj.model_fields.get("op")
    tags = get_args(field.annotation) if field is not None else ()
    if field is None or len(tags) != 1 or field.default != tags[0]:
        raise PluginError(f"{obj.__name__} needs `op: Literal['{name}'] = '{name}'`")
    if tags[0] != name:
        raise PluginError(f"the entry point is named '{name}' but {obj.__name__}'s op tag is '{tags[0]}'; "
                          "name the entry point by the tag")
    if "when" in obj.model_fields:  # a template node's own key (compiler/templates.py)
        raise PluginError(f"{obj.__name__} has a field named `when`, which template nodes use; rename it")
    for method in ("infer", "build"):
        if getattr(obj, method) is getattr(Op, method):
            raise PluginError(f"{obj.__name__} does not define `{method}`")
    if not hasattr(obj, "example"):
        raise PluginError(f"{obj.__name__} has no `example` (fields and input types the op tests run)")
    return obj


def load_plugins() -> None:
    """Register every op of the `zoo.ops` entry-point group (once; built-in ops must be registered first)."""
    from biggan_zoo.compiler.ops.base import REGISTRY

    for tag in REGISTRY:
        ORIGIN.setdefault(tag, "builtin")
    if os.environ.get("ZOO_NO_PLUGINS") or any(o != "builtin" for o in ORIGIN.values()) or FAILED:
        return
    register_entry_points(metadata.entry_points(group=GROUP))


def register_entry_points(entries: Iterable[metadata.EntryPoint]) -> None:
    """Check and register each entry point's op class; warn about and skip the ones that fail."""
    from biggan_zoo.compiler.ops.base import REGISTRY

    for entry in sorted(entries, key=lambda e: e.name):
        dist = f"{entry.dist.name} {entry.dist.version}" if entry.dist is not None else "an unknown distribution"
        try:
            _check_name(entry.name)  # before importing anything of the plugin
            cls = _check(entry.name, entry.load())
        except Exception as e:  # noqa: BLE001  (a plugin's import can raise anything; it must not stop zoo)
            why = str(e) if isinstance(e, PluginError) else f"importing {entry.value} raised {type(e).__name__}: {e}"
            FAILED[entry.name] = f"plugin op '{entry.name}' of {dist} was not loaded: {why}"
            warnings.warn(f"{FAILED[entry.name]} (fix or uninstall the plugin, or set ZOO_NO_PLUGINS=1)",
                          PluginWarning, stacklevel=2)
            continue
        REGISTRY[entry.name] = cls
        ORIGIN[entry.name] = f"plugin {dist}"


def unknown_op_hint(tag: str, hint: str) -> str:
    """The hint of an unknown op `tag`, saying why when plugins are off or the one for `tag` failed."""
    if tag in FAILED:
        return FAILED[tag]
    if os.environ.get("ZOO_NO_PLUGINS"):
        return f"ZOO_NO_PLUGINS is set, so no plugin ops are loaded; {hint}"
    return hint


@contextlib.contextmanager
def builtin_ops_only() -> Iterator[None]:
    """The registry without plugin ops for the duration (the catalog's schema files are written so)."""
    from biggan_zoo.compiler.ops.base import REGISTRY
    from biggan_zoo.compiler.spec import spec_models

    saved = dict(REGISTRY)
    for tag, origin in ORIGIN.items():
        if origin != "builtin":
            REGISTRY.pop(tag, None)
    spec_models.cache_clear()
    try:
        yield
    finally:
        REGISTRY.clear()
        REGISTRY.update(saved)
        spec_models.cache_clear()
