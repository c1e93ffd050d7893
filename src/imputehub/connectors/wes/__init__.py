"""The GA4GH WES 1.0/1.1 connector; see `connector.py`."""

from imputehub.connectors.wes.connector import WesConnector

__all__ = ["WesConnector"]
