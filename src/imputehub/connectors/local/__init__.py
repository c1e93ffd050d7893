"""The built-in local engine as a connector (service type `local`)."""

from imputehub.connectors.local.connector import EngineConfig, LocalConnector

__all__ = ["EngineConfig", "LocalConnector"]
