"""The hub's outgoing requests: what they may reach (`addresses.py`), the TLS context (`tls.py`)."""
