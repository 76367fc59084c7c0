"""zmtp proxy: run ZeroMQ proxies without libzmq.

``await proxy.run(frontend, backend, capture=..., control=...)`` wires two zmtp sockets
the way ``zmq_proxy_steerable`` does; :class:`Proxy` adds in-process steering and live
statistics.  ``python -m proxy`` (or ``zmtp-proxy``) runs one from the command line.
"""

from ._endpoints import SocketSpec, parse_socket_spec
from ._proxy import (
    BATCH_SIZE,
    CAPTURE_TYPES,
    DirectionStatistics,
    Proxy,
    ProxyStatistics,
    Traffic,
    run,
)

__all__ = [
    "BATCH_SIZE",
    "CAPTURE_TYPES",
    "DirectionStatistics",
    "Proxy",
    "ProxyStatistics",
    "SocketSpec",
    "Traffic",
    "parse_socket_spec",
    "run",
]
