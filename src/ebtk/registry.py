"""One generic name → factory registry, shared by objectives and tasks.

Registries are filled explicitly by `ebtk.builtins.load()` importing the modules that register, so a
lookup never depends on an accidental import side effect elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ebtk.errors import EbtkError

_REGISTRIES: dict[str, dict[str, Any]] = {}


def register(kind: str, name: str) -> Callable[[Any], Any]:
    """Decorator: `@register("objective", "nce")` files the class/function under kind/name."""

    def deco(obj: Any) -> Any:
        table = _REGISTRIES.setdefault(kind, {})
        if name in table and table[name] is not obj:
            raise ValueError(f"{kind} {name!r} registered twice")
        table[name] = obj
        return obj

    return deco


def get(kind: str, name: str) -> Any:
    """Look up a registered object; unknown names raise EbtkError listing the known ones."""
    from ebtk import builtins

    builtins.load()
    table = _REGISTRIES.get(kind, {})
    if name not in table:
        known = ", ".join(sorted(table)) or "none"
        raise EbtkError(f"unknown {kind} {name!r}; known: {known}")
    return table[name]


def names(kind: str) -> list[str]:
    from ebtk import builtins

    builtins.load()
    return sorted(_REGISTRIES.get(kind, {}))
