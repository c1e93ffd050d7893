"""The process's one TLS context for outgoing HTTPS (SSL_CERT_FILE / SSL_CERT_DIR honoured).

Building one parses certifi's bundle again: about 30 ms of CPU. An httpx client made without
`verify=ssl_context()` builds its own, even for plain http, so every client the hub makes
passes this one (connectors/clients.py, notify/delivery.py).
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
