"""``--metrics HOST:PORT``: a Prometheus endpoint for the proxy (``prometheus_client``).

prometheus_client serves HTTP from its own daemon thread.  Nothing is counted twice:
at each scrape a collector asks the proxy's trio thread for one consistent snapshot
(``trio.from_thread.run_sync``, so the proxy's state is only ever read by the thread
that changes it) and turns it into metric families.  The hot path pays nothing.

Metrics (all prefixed ``zmtp_proxy_``):

* per direction (``direction="frontend->backend"``): ``messages_total``,
  ``frames_total``, ``bytes_total`` delivered;
* per socket (``socket="frontend"``, ``type="ROUTER"``): ``peers``, ``queue_depth``
  (``queue="out"|"in"``), ``handshakes_failed_total`` (``reason`` = error class),
  ``reconnects_total``, ``messages_dropped_total`` (``reason="hwm"|"unroutable"``, and
  ``reason="capture_busy"`` on the capture socket), ``endpoints_not_reconnecting``;
* ``paused`` (1 while paused by PAUSE).

prometheus_client is an optional dependency (the ``metrics`` extra); importing this
module without it raises ImportError, which the command line turns into a clear error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import trio
from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from ._health import SocketHealth
from ._proxy import Proxy, ProxyStatistics

__all__ = ["MetricsServer", "Snapshot", "collect_snapshot"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one scrape reports."""

    directions: tuple[str, ...]
    stats: ProxyStatistics
    paused: bool
    sockets: tuple[SocketHealth, ...]


def collect_snapshot(proxy: Proxy, health: Callable[[], Sequence[SocketHealth]]) -> Snapshot:
    """Take a snapshot (in the proxy's trio thread)."""
    return Snapshot(tuple(proxy.directions), proxy.statistics(), proxy.paused, tuple(health()))


class _Collector(Collector):
    def __init__(self, take: Callable[[], Snapshot], token: trio.lowlevel.TrioToken) -> None:
        self._take = take
        self._token = token

    def collect(self) -> Iterator[Metric]:
        try:
            snap = trio.from_thread.run_sync(self._take, trio_token=self._token)
        except trio.RunFinishedError:
            return  # the proxy is shutting down: an empty scrape
        yield from _families(snap)


def _families(snap: Snapshot) -> Iterator[Metric]:
    p = "zmtp_proxy_"
    traffic = {
        name: CounterMetricFamily(p + name, text, labels=["direction"])
        for name, text in (
            ("messages", "Messages delivered, per direction"),
            ("frames", "Frames delivered, per direction"),
            ("bytes", "Payload bytes delivered, per direction"),
        )
    }
    for name in snap.directions:
        d = (
            snap.stats.frontend_to_backend
            if name == "frontend->backend"
            else (snap.stats.backend_to_frontend)
        )
        traffic["messages"].add_metric([name], d.messages)
        traffic["frames"].add_metric([name], d.frames)
        traffic["bytes"].add_metric([name], d.bytes)
    yield from traffic.values()

    labels = ["socket", "type"]
    peers = GaugeMetricFamily(p + "peers", "Connected peers (handshake done)", labels=labels)
    depth = GaugeMetricFamily(
        p + "queue_depth", "Messages queued in the socket", labels=[*labels, "queue"]
    )
    failed = CounterMetricFamily(
        p + "handshakes_failed", "Failed handshakes, by error", labels=[*labels, "reason"]
    )
    reconnects = CounterMetricFamily(
        p + "reconnects", "Reconnection attempts scheduled", labels=labels
    )
    dropped = CounterMetricFamily(
        p + "messages_dropped", "Messages dropped, by reason", labels=[*labels, "reason"]
    )
    abandoned = GaugeMetricFamily(
        p + "endpoints_not_reconnecting",
        "connect()ed endpoints abandoned after a protocol error (libzmq's behaviour; "
        "see --reconnect-on-protocol-error)",
        labels=labels,
    )
    for h in snap.sockets:
        who = [h.role, h.socket_type]
        peers.add_metric(who, h.peers)
        depth.add_metric([*who, "out"], h.queued_out)
        depth.add_metric([*who, "in"], h.queued_in)
        for reason, n in sorted(h.handshakes_failed.items()):
            failed.add_metric([*who, reason], n)
        reconnects.add_metric(who, h.reconnects)
        dropped.add_metric([*who, "hwm"], h.dropped_hwm)
        if h.socket_type == "ROUTER":
            dropped.add_metric([*who, "unroutable"], h.dropped_unroutable)
        if h.role == "capture":
            dropped.add_metric([*who, "capture_busy"], snap.stats.capture_dropped)
        abandoned.add_metric(who, len(h.abandoned))
    yield from (peers, depth, failed, reconnects, dropped, abandoned)
    yield GaugeMetricFamily(p + "paused", "1 while paused by PAUSE", value=int(snap.paused))


class MetricsServer:
    """The HTTP endpoint; :meth:`start` in the proxy's trio thread, :meth:`aclose` after.

    Args:
        host, port: where to listen (port 0 picks a free one).
        take: returns a :class:`Snapshot`; called in the trio thread at each scrape.
    """

    def __init__(self, host: str, port: int, take: Callable[[], Snapshot]) -> None:
        self.host = host
        self.port = port
        self._take = take
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Listen; return the URL to scrape.

        Raises:
            OSError: the address cannot be bound.
        """
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self._take, trio.lowlevel.current_trio_token()))
        self._server, self._thread = start_http_server(self.port, self.host, registry)
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/metrics"

    async def aclose(self) -> None:
        """Stop serving (waits for the server thread, off the trio thread)."""
        server, self._server = self._server, None
        if server is None:
            return
        # shutdown() waits for serve_forever's poll loop (up to half a second); a
        # scrape running meanwhile needs this trio thread, so wait in a worker thread.
        await trio.to_thread.run_sync(server.shutdown)
        server.server_close()
