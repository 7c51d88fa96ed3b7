"""Optional dependencies: which extra brings which modules, and one line when one is
missing, instead of a traceback from deep inside the server.

An extra's modules are imported here, at start-up, only when a setting needs them;
a user who never asks for cluster mode never needs coredis.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from types import MappingProxyType

# extra name in pyproject.toml -> the modules it installs that rtcserver imports
EXTRAS: Mapping[str, Sequence[str]] = MappingProxyType({"cluster": ("coredis",)})


def missing(extra: str, feature: str, modules: Sequence[str] | None = None) -> str | None:
    """One line saying what to install when `feature` needs `extra` and one of its
    modules does not import; None when they all do."""
    for module in EXTRAS[extra] if modules is None else modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return (
                f"{feature} needs the '{extra}' extra ({module}: {exc.msg}); "
                f"install it with: pip install 'rtcserver[{extra}]'"
            )
    return None
