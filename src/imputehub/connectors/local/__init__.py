"""The built-in local engine as a connector (service type `local`).

The connector is imported on first use: the runner and its launcher, started as
`python -m imputehub.connectors.local.<module>` for every run, import this package first
and need none of the connector's (asyncio, the Protocol's types).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imputehub.connectors.local.connector import EngineConfig, LocalConnector

__all__ = ["EngineConfig", "LocalConnector"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("imputehub.connectors.local.connector"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
