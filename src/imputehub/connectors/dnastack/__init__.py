"""The DNAstack Workbench (eWES) connector; see `connector.py`."""

from imputehub.connectors.dnastack.connector import DnastackConnector

__all__ = ["DnastackConnector"]
