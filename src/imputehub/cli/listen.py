"""The listening socket of `serve` and `api`, opened before anything else happens."""

from __future__ import annotations

import errno
import socket

from imputehub.cli.errors import CliError


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or a one-line CliError saying what to do instead.

    Bound first, then handed to uvicorn: a start that cannot listen stops before it creates
    the first admin (whose generated password is shown only once) or migrates anything.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CliError(
                f"port {port} on {host} is already in use (is another imputehub running?); "
                f"start on another with IMPUTEHUB_PORT={port + 1} make run (or --port {port + 1})"
            ) from None
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock
