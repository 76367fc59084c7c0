"""``python -m proxy --demo``: a short, self-contained tour for a new user.

It starts the default queue (ROUTER frontend, DEALER backend) on free ports of
127.0.0.1, attaches REQ clients and REP workers of our own (and pyzmq ones, talking
to the proxy over real libzmq, when pyzmq is installed), shows the live statistics
line while they exchange requests, asks the proxy for STATISTICS and TERMINATEs it
over a control socket, checks that every reply reached the client that asked, prints
a summary and exits 0.  It takes a few seconds.

``--demo --curve`` runs the same queue over CURVE: throwaway certificates are made in
a temporary directory (the proxy's, and one each for the clients and the workers), the
proxy's sockets are CURVE servers letting in only those two keys (an
:class:`zmtp.auth.Authenticator`, as ``--curve-allow DIR`` does), every client and
worker, ours and pyzmq's, is a CURVE client, and a client with a key of its own is
shown to be refused.
"""

from __future__ import annotations

import importlib.util
import struct
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

import zmtp
from zmtp.auth import Authenticator, create_certificates, load_certificate

from ._console import PROG, Output, Stopper, final_line, print_statistics
from ._proxy import Proxy, ProxyStatistics

__all__ = ["demo"]

CLIENTS = 3
WORKERS = 3
REQUESTS = 120
#: Pause between a client's requests: slow enough to watch the statistics move.
PACE = 0.012
DEADLINE = 60.0
#: How long the refused client of ``--demo --curve`` waits to hear it is refused.
REFUSAL_WAIT = 10.0


@dataclass(frozen=True)
class _Curve:
    """The demo's throwaway certificates, as socket options (Z85 keys)."""

    directory: str
    server_public: bytes
    server_secret: bytes = field(repr=False)
    #: Our key pairs for the clients' and the workers' sockets: (public, secret).
    client: tuple[bytes, bytes] = field(repr=False)
    worker: tuple[bytes, bytes] = field(repr=False)
    allowed: str = ""

    def server_options(self) -> dict[str, Any]:
        return {"curve_server": True, "curve_secretkey": self.server_secret}

    def client_options(self, pair: tuple[bytes, bytes]) -> dict[str, Any]:
        return {"curve_secretkey": pair[1], "curve_serverkey": self.server_public}


@asynccontextmanager
async def _curve_setup() -> AsyncIterator[_Curve]:
    """Certificates in a temporary directory, removed at the end."""
    with tempfile.TemporaryDirectory(prefix="zmtp-proxy-demo-") as tmp:
        base = Path(tmp)
        (base / "proxy").mkdir()
        (base / "allowed").mkdir()
        _, server_file = create_certificates(base / "proxy", "proxy")
        pairs = []
        for name in ("client", "worker"):
            _, secret_file = create_certificates(base / "allowed", name)
            public, secret = load_certificate(secret_file)
            assert secret is not None
            pairs.append((public, secret))
        public, secret = load_certificate(server_file)
        assert secret is not None
        yield _Curve(tmp, public, secret, pairs[0], pairs[1], str(base / "allowed"))


def _set_pyzmq_curve(sock: Any, options: dict[str, Any]) -> None:
    import zmq  # noqa: PLC0415  (optional: only when pyzmq is installed)

    if options:
        sock.setsockopt(zmq.CURVE_SERVERKEY, options["curve_serverkey"])
        sock.setsockopt(zmq.CURVE_SECRETKEY, options["curve_secretkey"])
        sock.setsockopt(zmq.CURVE_PUBLICKEY, zmtp.curve_public(options["curve_secretkey"]))


class _Tally:
    """What the clients saw; shared by trio tasks and pyzmq threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok = 0
        self.wrong: list[str] = []
        self.served: Counter[bytes] = Counter()

    def check(self, name: bytes, seq: bytes, reply: list[bytes]) -> None:
        with self.lock:
            if reply[:2] == [name, seq] and len(reply) == 3:
                self.ok += 1
                self.served[reply[2]] += 1
            else:
                self.wrong.append(f"{name!r} sent {seq!r}, got {reply!r}")


async def _our_worker(
    ctx: zmtp.Context, endpoint: str, name: bytes, options: dict[str, Any]
) -> None:
    rep = ctx.socket(zmtp.REP, linger=0, **options)
    await rep.connect(endpoint)
    while True:
        request = await rep.recv_multipart()
        await rep.send_multipart([*request, name])


async def _our_client(
    ctx: zmtp.Context, endpoint: str, name: bytes, tally: _Tally, options: dict[str, Any]
) -> None:
    req = ctx.socket(zmtp.REQ, linger=0, **options)
    await req.connect(endpoint)
    for i in range(REQUESTS):
        seq = b"%d" % i
        await req.send_multipart([name, seq])
        tally.check(name, seq, await req.recv_multipart())
        await trio.sleep(PACE)
    await req.aclose()


def _pyzmq_client(
    zctx: Any, endpoint: str, name: bytes, tally: _Tally, stop: Any, *, options: dict[str, Any]
) -> None:
    import zmq  # noqa: PLC0415  (optional: only when pyzmq is installed)

    req = zctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    try:
        _set_pyzmq_curve(req, options)
        req.connect(endpoint)
        for i in range(REQUESTS):
            seq = b"%d" % i
            req.send_multipart([name, seq])
            # Poll rather than block, so that a stop (Ctrl-C) ends the thread at once.
            while not req.poll(50):
                if stop.is_set():
                    return
            tally.check(name, seq, req.recv_multipart())
            time.sleep(PACE)
    finally:
        req.close()


def _pyzmq_worker(
    zctx: Any, endpoint: str, name: bytes, stop: Any, options: dict[str, Any]
) -> None:
    import zmq  # noqa: PLC0415  (optional: only when pyzmq is installed)

    rep = zctx.socket(zmq.REP)
    rep.setsockopt(zmq.LINGER, 0)
    try:
        _set_pyzmq_curve(rep, options)
        rep.connect(endpoint)
        while not stop.is_set():
            if rep.poll(50):
                request = rep.recv_multipart()
                rep.send_multipart([*request, name])
    finally:
        rep.close()


async def _set_when_cancelled(event: threading.Event) -> None:
    """Set ``event`` when cancelled: the pyzmq threads of the demo watch it."""
    try:
        await trio.sleep_forever()
    finally:
        event.set()


async def _steer(ctx: zmtp.Context, endpoint: str, command: bytes) -> list[bytes]:
    req = ctx.socket(zmtp.REQ, linger=0)
    await req.connect(endpoint)
    await req.send_multipart([command])
    reply = await req.recv_multipart()
    await req.aclose()
    return reply


async def _refused(ctx: zmtp.Context, endpoint: str, curve: _Curve) -> str | None:
    """Connect a CURVE client whose key is not on the allow list; return why its
    handshake failed, or None if it got in (or heard nothing in time)."""
    _public, secret = zmtp.curve_keypair()
    stranger = ctx.socket(
        zmtp.REQ, linger=0, curve_secretkey=secret, curve_serverkey=curve.server_public
    )
    try:
        with stranger.monitor() as events, trio.move_on_after(REFUSAL_WAIT):
            await stranger.connect(endpoint)
            async for event in events:
                if event.type is zmtp.EventType.HANDSHAKE_FAILED:
                    return event.reason or "refused"
                if event.type is zmtp.EventType.HANDSHAKE_SUCCEEDED:
                    return None
        return None
    finally:
        await stranger.aclose()


async def demo(stats_interval: float, out: Output, stopper: Stopper, *, curve: bool = False) -> int:
    """Run the demonstration; return the exit status (0 when everything checked out).

    ``stats_interval`` is the live statistics period (0: a quarter of a second);
    ``curve`` runs it over CURVE (``--demo --curve``).
    """
    if not curve:
        return await _demo(stats_interval, out, stopper, None)
    try:
        zmtp.curve_keypair()  # PyNaCl is the curve extra
    except ImportError as exc:
        out.line(f"{PROG} demo: FAILED, {exc}")
        return 1
    async with _curve_setup() as keys:
        return await _demo(stats_interval, out, stopper, keys)


def _pyzmq_curve() -> bool:
    import zmq  # noqa: PLC0415  (optional: only when pyzmq is installed)

    return bool(zmq.has("curve"))


async def _demo(stats_interval: float, out: Output, stopper: Stopper, curve: _Curve | None) -> int:
    have_pyzmq = importlib.util.find_spec("zmq") is not None
    no_pyzmq_why = ""
    if have_pyzmq and curve is not None and not _pyzmq_curve():
        have_pyzmq = False
        no_pyzmq_why = "pyzmq's libzmq has no CURVE: ours only"
    tally = _Tally()
    interval = stats_interval or 0.25
    stop_threads = threading.Event()
    result: ProxyStatistics | None = None
    libzmq_stats: list[int] = []
    refusal: str | None = ""
    over = " over CURVE" if curve is not None else ""
    server_opts = curve.server_options() if curve is not None else {}
    client_opts = curve.client_options(curve.client) if curve is not None else {}
    worker_opts = curve.client_options(curve.worker) if curve is not None else {}
    how = ""
    out.line(f"{PROG} demo: a ROUTER<->DEALER queue with REQ clients and REP workers{over}")
    if curve is not None:
        out.line(
            f"throwaway certificates in {curve.directory}: proxy/proxy.key_secret for the "
            "proxy, allowed/client.key and allowed/worker.key (and .key_secret) for the "
            "clients and workers"
        )
        out.line(f"the proxy's public key (clients need it): {curve.server_public.decode()}")
        how = "CURVE server, clients: 2 keys from allowed/; "
    with stopper.scope, trio.move_on_after(DEADLINE) as deadline:
        async with zmtp.Context() as ctx:
            auth: Authenticator | None = None
            if curve is not None:
                # As --curve-allow DIR does: only the keys in allowed/ get in.
                auth = Authenticator(ctx)
                auth.configure_curve(location=curve.allowed)
                await auth.start()
            frontend = ctx.socket(zmtp.ROUTER, linger=0, **server_opts)
            backend = ctx.socket(zmtp.DEALER, linger=0, **server_opts)
            control = ctx.socket(zmtp.REP, linger=0)
            fe = await frontend.bind("tcp://127.0.0.1:0")
            be = await backend.bind("tcp://127.0.0.1:0")
            await control.bind("inproc://demo-control")
            out.line(f"frontend ROUTER bound to {fe} ({how}free port; the real default is 5559)")
            out.line(f"backend DEALER bound to {be} ({how}free port; the real default is 5560)")
            proxy = Proxy(frontend, backend, control=control)
            zctx: Any = None
            clients = f"{CLIENTS} zmtp REQ clients"
            workers = f"{WORKERS} zmtp REP workers"
            if have_pyzmq:
                import zmq  # noqa: PLC0415  (optional: only when pyzmq is installed)

                zctx = zmq.Context()
                clients += f" + {CLIENTS} pyzmq (libzmq {zmq.zmq_version()}) REQ clients"
                workers += " + 1 pyzmq REP worker"
            elif no_pyzmq_why:
                workers += f" ({no_pyzmq_why})"
            out.line(f"{clients}, {REQUESTS} requests each; {workers}")
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(proxy.run)
                    if curve is not None:
                        refusal = await _refused(ctx, fe, curve)
                        if refusal is None:
                            out.line("a client with a key not in allowed/ was NOT refused")
                        else:
                            out.line(
                                f"a client with a key not in allowed/ is refused ({refusal}; "
                                "the WARNINGs on stderr are about it)"
                            )
                    nursery.start_soon(print_statistics, proxy, interval, out)
                    async with trio.open_nursery() as helpers:
                        # Threads cannot be cancelled: a stop (Ctrl-C, the deadline,
                        # the clients being done) reaches them through this event.
                        helpers.start_soon(_set_when_cancelled, stop_threads)
                        for n in range(WORKERS):
                            helpers.start_soon(
                                _our_worker, ctx, be, b"zmtp-worker-%d" % n, worker_opts
                            )
                        if zctx is not None:
                            helpers.start_soon(
                                trio.to_thread.run_sync,
                                _pyzmq_worker,
                                zctx,
                                be,
                                b"pyzmq-worker",
                                stop_threads,
                                worker_opts,
                            )
                        async with trio.open_nursery() as requesters:
                            for n in range(CLIENTS):
                                requesters.start_soon(
                                    _our_client, ctx, fe, b"zmtp-%d" % n, tally, client_opts
                                )
                                if zctx is not None:
                                    requesters.start_soon(
                                        trio.to_thread.run_sync,
                                        partial(_pyzmq_client, options=client_opts),
                                        zctx,
                                        fe,
                                        b"pyzmq-%d" % n,
                                        tally,
                                        stop_threads,
                                    )
                        stop_threads.set()
                        helpers.cancel_scope.cancel()
                    stats_reply = await _steer(ctx, "inproc://demo-control", b"STATISTICS")
                    libzmq_stats = [struct.unpack("=Q", f)[0] for f in stats_reply]
                    await _steer(ctx, "inproc://demo-control", b"TERMINATE")
                    # run() returns on TERMINATE; stop the statistics printer too.
                    result = proxy.statistics()
                    nursery.cancel_scope.cancel()
            finally:
                stop_threads.set()
                if zctx is not None:
                    zctx.term()
                if auth is not None:
                    await auth.stop()
    n_clients = CLIENTS * (2 if have_pyzmq else 1)
    expected = n_clients * REQUESTS
    if stopper.signal_name:
        out.line(f"{PROG} demo: interrupted by {stopper.signal_name}")
        return 0
    if deadline.cancelled_caught or result is None:
        out.line(f"{PROG} demo: FAILED, not finished within {DEADLINE:.0f} s")
        return 1
    out.line(
        f"{PROG} demo: {n_clients} clients made {expected} requests{over}; "
        f"{tally.ok} replies came back to the client that asked"
    )
    served = ", ".join(f"{w.decode()} {n}" for w, n in sorted(tally.served.items()))
    out.line(f"served by: {served}")
    if len(libzmq_stats) == 8:
        out.line(
            "control STATISTICS reply (libzmq layout, frames and bytes): "
            f"frontend in {libzmq_stats[0]}/{libzmq_stats[1]}, "
            f"out {libzmq_stats[2]}/{libzmq_stats[3]}; "
            f"backend in {libzmq_stats[4]}/{libzmq_stats[5]}, "
            f"out {libzmq_stats[6]}/{libzmq_stats[7]}"
        )
    out.line(final_line(["frontend->backend", "backend->frontend"], result))
    for problem in tally.wrong[:5]:
        out.line(f"wrong reply: {problem}")
    if tally.ok != expected or tally.wrong or refusal is None:
        out.line(f"{PROG} demo: FAILED")
        return 1
    if curve is not None:
        out.line(
            f"{PROG} demo: OK. Run a CURVE proxy yourself with: python -m proxy "
            "--curve-secret proxy.key_secret [--curve-allow DIR] (see --help)"
        )
        return 0
    out.line(
        f"{PROG} demo: OK. Run a proxy yourself with: python -m proxy "
        "(or e.g. python -m proxy --frontend XSUB@tcp://*:5556 --backend XPUB@tcp://*:5557)"
    )
    return 0
