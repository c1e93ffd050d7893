"""The Michigan Imputation Server API v2 (Cloudgene 3) connector; see `connector.py`."""

from imputehub.connectors.michigan.connector import MichiganConnector

__all__ = ["MichiganConnector"]
