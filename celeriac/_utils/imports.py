"""Import objects by dotted path (``pkg.mod:attr`` or ``pkg.mod.attr``)."""

from __future__ import annotations

import importlib
from typing import Any


def symbol_by_name(name: str | Any, default: Any = None) -> Any:
    """Return the object a dotted path names; non-strings are returned unchanged."""
    if not isinstance(name, str):
        return name
    if ":" in name:
        module_name, _, attr = name.partition(":")
    else:
        module_name, _, attr = name.rpartition(".")
        if not module_name:
            return importlib.import_module(attr)
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        if default is not None:
            return default
        raise
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
