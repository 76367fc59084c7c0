"""Endpoint strings: ``tcp://host:port``, ``ipc:///path``, ``inproc://name``.

The syntax is libzmq's (zmq_tcp(7), zmq_ipc(7), zmq_inproc(7)):

* ``tcp://*:5555`` binds every interface; ``tcp://127.0.0.1:0`` or ``tcp://host:*`` binds an
  ephemeral port; IPv6 literals go in brackets (``tcp://[::1]:5555``); host names resolve.
* ``ipc:///tmp/feed.sock`` (absolute) or ``ipc://feed.sock`` (relative); ``ipc://*`` binds a
  fresh path in a private temporary directory.  ``ipc://@name`` is Linux's abstract
  namespace.
* ``inproc://name`` connects sockets of one :class:`~zmtp.Context` directly.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Endpoint", "parse_endpoint"]

TRANSPORTS = ("tcp", "ipc", "inproc")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed endpoint.

    Attributes:
        transport: ``"tcp"``, ``"ipc"`` or ``"inproc"``.
        host: tcp host ("" for the ``*`` wildcard); empty for other transports.
        port: tcp port (0 for ephemeral); 0 for other transports.
        path: ipc path or inproc name.
    """

    transport: str
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.transport == "tcp":
            host = self.host or "*"
            if ":" in host:
                host = f"[{host}]"
            return f"tcp://{host}:{self.port}"
        return f"{self.transport}://{self.path}"


def parse_endpoint(endpoint: str, *, bind: bool = False) -> Endpoint:
    """Parse an endpoint string.

    Args:
        endpoint: e.g. ``tcp://127.0.0.1:5555``.
        bind: wildcards (``*`` host or port, ``ipc://*``) are allowed only when binding.

    Raises:
        TypeError: not a str.
        ValueError: unknown transport or malformed address, with the reason.
    """
    if not isinstance(endpoint, str):
        raise TypeError(f"endpoint must be a str, not {type(endpoint).__name__}")
    transport, sep, address = endpoint.partition("://")
    if not sep:
        raise ValueError(f"invalid endpoint {endpoint!r}: expected transport://address")
    if transport not in TRANSPORTS:
        raise ValueError(
            f"invalid endpoint {endpoint!r}: unknown transport {transport!r} "
            f"(supported: {', '.join(TRANSPORTS)})"
        )
    if not address:
        raise ValueError(f"invalid endpoint {endpoint!r}: empty address")
    if transport == "inproc":
        return Endpoint("inproc", path=address)
    if transport == "ipc":
        if address == "*" and not bind:
            raise ValueError(f"invalid endpoint {endpoint!r}: ipc://* is only valid for bind")
        return Endpoint("ipc", path=address)
    host, colon, port_text = address.rpartition(":")
    if not colon or not host:
        raise ValueError(f"invalid endpoint {endpoint!r}: expected tcp://host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"invalid endpoint {endpoint!r}: IPv6 addresses go in brackets")
    if host == "*":
        if not bind:
            raise ValueError(f"invalid endpoint {endpoint!r}: cannot connect to host '*'")
        host = ""
    if port_text == "*":
        if not bind:
            raise ValueError(f"invalid endpoint {endpoint!r}: cannot connect to port '*'")
        port = 0
    else:
        if not port_text.isdigit():
            raise ValueError(f"invalid endpoint {endpoint!r}: port {port_text!r} is not a number")
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ValueError(f"invalid endpoint {endpoint!r}: port {port} out of range")
        if port == 0 and not bind:
            raise ValueError(f"invalid endpoint {endpoint!r}: cannot connect to port 0")
    return Endpoint("tcp", host=host, port=port)
