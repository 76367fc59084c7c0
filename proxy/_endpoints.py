"""Socket specifications in the CZMQ convention: ``TYPE@ENDPOINT`` and ``TYPE>ENDPOINT``.

CZMQ's ``zsock_attach`` reads a comma-separated list of endpoints, each prefixed by
``@`` (bind) or ``>`` (connect); an endpoint without a prefix gets the socket type's
usual role (CZMQ's ``serverish`` flag: ROUTER, REP, PUB, XPUB and PULL bind, the
others connect).  We put the socket type in front, so one argument says everything::

    ROUTER@tcp://*:5559
    XSUB>tcp://10.0.0.1:5556,>tcp://10.0.0.2:5556
    DEALER@tcp://127.0.0.1:5560,@ipc:///tmp/workers.sock

The first endpoint must carry its prefix, since it separates the type from the list.
"""

from __future__ import annotations

from dataclasses import dataclass

from zmtp import SocketType, parse_endpoint

__all__ = ["BINDS_BY_DEFAULT", "SocketSpec", "parse_socket_spec"]

#: Socket types whose endpoints bind when they carry no ``@``/``>`` prefix (CZMQ).
BINDS_BY_DEFAULT = frozenset(
    {SocketType.ROUTER, SocketType.REP, SocketType.PUB, SocketType.XPUB, SocketType.PULL}
)


@dataclass(frozen=True, slots=True)
class SocketSpec:
    """A socket type and where it binds or connects.

    Attributes:
        socket_type: the zmtp socket type.
        endpoints: ``(bind, endpoint)`` pairs, in order; ``bind`` False means connect.
    """

    socket_type: SocketType
    endpoints: tuple[tuple[bool, str], ...]

    def __str__(self) -> str:
        items = ",".join(("@" if bind else ">") + ep for bind, ep in self.endpoints)
        return f"{self.socket_type.name}{items}"


def parse_socket_spec(text: str) -> SocketSpec:
    """Parse ``TYPE@ENDPOINT[,[@|>]ENDPOINT...]`` (``>`` connects).

    Raises:
        ValueError: with a one-line reason, for an unknown type, a missing or malformed
            endpoint, or a wildcard in an endpoint that connects.
    """
    cut = min((i for i in (text.find("@"), text.find(">")) if i >= 0), default=-1)
    if cut < 0:
        raise ValueError(
            f"{text!r}: expected TYPE@ENDPOINT (bind) or TYPE>ENDPOINT (connect), "
            "e.g. ROUTER@tcp://*:5559"
        )
    type_name = text[:cut].strip()
    try:
        socket_type = SocketType[type_name.upper()]
    except KeyError:
        names = ", ".join(t.name for t in SocketType)
        raise ValueError(f"{text!r}: unknown socket type {type_name!r} (one of {names})") from None
    endpoints: list[tuple[bool, str]] = []
    for raw in text[cut:].split(","):
        item = raw.strip()
        if item[:1] in ("@", ">"):
            bind, endpoint = item[0] == "@", item[1:].strip()
        else:
            bind, endpoint = socket_type in BINDS_BY_DEFAULT, item
        if not endpoint:
            raise ValueError(f"{text!r}: empty endpoint")
        try:
            parse_endpoint(endpoint, bind=bind)
        except ValueError as exc:
            raise ValueError(f"{text!r}: {exc}") from None
        endpoints.append((bind, endpoint))
    return SocketSpec(socket_type, tuple(endpoints))
