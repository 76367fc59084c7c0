"""The benchmark scenarios and how one measurement of each is made.

A :class:`Case` is one configuration (scenario, transport, message size) measured
with several :class:`Variant`\\ s: ours with the per-message API, ours with the batch
API, and libzmq through pyzmq.  Ours runs as a library user gets it, ``zmtp.Context()``
defaults (malloc left alone); the 1 MiB tcp and ipc cases also measure both APIs with
``Context(tune_allocator=True)`` (api ``msg+tuned``, ``batch+tuned``), the setting that
only matters from 128 KiB bodies on.  ``python -m proxy`` tunes malloc at start, as it
does by default.  The driver (:mod:`bench._run`) alternates the variants
run by run (A B A B ...), so that a change in the machine's load falls on both.

Every measurement starts fresh processes: the receiving side first, which signals
``READY`` (and, when it binds, where), then the sending side.  The receiver times a
fixed number of messages from the arrival of the first to the arrival of the last, so
process start-up and connection set-up are not counted.  Topologies:

* ``throughput``: PUSH (sender process) → PULL (receiver process, binds).  Ours talks
  to ours and pyzmq to pyzmq; over inproc (ours only) both are tasks of one process.
* ``latency``: REQ (client process) ↔ REP (server process, binds); ``warmup`` untimed
  round trips, then a timed sample of each round trip; median and p99 per run.
* ``proxy``: pyzmq peers on both ends, the proxy in its own process: ``python -m
  proxy`` (ours) or ``zmq.proxy`` (a pyzmq worker), both binding both sockets.
  PULL↔PUSH: a pyzmq PUSH feeds it, a pyzmq PULL times what comes out.
  ROUTER↔DEALER: a pyzmq DEALER client keeps ``window`` requests in flight and times
  the replies; a pyzmq DEALER worker behind the backend echoes them.
* ``proxy-scale``: the ROUTER↔DEALER proxy case with one ``python -m proxy`` process
  and with two, the pyzmq client and worker connected to every proxy (load balancing
  and fair queueing spread the work), both measured in the same run.
* ``pubsub``: one PUB process, 10 SUB processes (each its own process, subscribed to
  everything), all of one implementation.  The publisher sends probes until every
  subscriber has received one (the slow-joiner problem), then ``count`` data
  messages with ``xpub_nodrop`` (so nothing is dropped and every subscriber times the
  same count); the figure is all deliveries over the window from the first
  subscriber's first data message to the last subscriber's last.
* ``floor``: plain trio with no ZMTP (:mod:`bench._floor`), streaming short frames and
  ping-ponging on a raw fd, against the same libzmq figures: what the design allows.
* ``proxy/xsub-xpub`` (the forwarder): 2 pyzmq PUBs -> the proxy's XSUB, its XPUB ->
  2 pyzmq SUBs; nothing drops (XPUB_NODROP, ``--xpub-nodrop``), each subscriber times
  publishers x count messages.
* ``pubsub-zmqsubs``: the pub/sub case with pyzmq subscribers whoever publishes, so
  that the publisher is measured alone.
* ``router``: a ROUTER (the variant's) with N pyzmq DEALERs (one process) sending
  round-robin after a hello each; the ROUTER times ``count`` messages.
* ``xpub-match``: the variant's PUB, one pyzmq SUB holding N subscriptions; every
  data message matches the last one subscribed (the publisher's matching cost).
* ``memory``: a bound ROUTER's resident size before and after N pyzmq DEALERs
  connected and went idle: per connection and in all.

Every case but the floor and inproc also measures pyomq (omq.rs, through the same
pyzmq-API roles, :mod:`bench._libzmq`), and each row is judged against the better of
libzmq and pyomq.

Receivers also report their CPU time and minor page faults over the timed window,
senders their CPU time, and the driver reads the proxy process's CPU time from /proc.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._proc import BenchError, Proc, Processes

__all__ = ["CASES", "Case", "Settings", "Variant", "size_label"]

KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class Variant:
    """Who is measured: ``impl`` ``ours``, ``libzmq`` (pyzmq), ``pyomq`` (omq.rs) or
    ``trio`` (the floor); ``api`` ``msg``/``batch``/``-``;
    ``tuned``: ours with ``zmtp.Context(tune_allocator=True)`` (the default leaves malloc
    alone)."""

    impl: str
    api: str
    tuned: bool = False

    @property
    def api_label(self) -> str:
        """The api column: ``msg``, or ``msg+tuned`` for the tuned-malloc variant."""
        return f"{self.api}+tuned" if self.tuned else self.api

    @property
    def label(self) -> str:
        return self.impl if self.api == "-" else f"{self.impl} {self.api_label}"


@dataclass
class Settings:
    """What the command line chose, and where the run keeps its files."""

    runs: int = 3
    quick: bool = False
    hwm: int = 1000
    timeout: float = 120.0
    tmpdir: str = "/tmp"
    #: ``--profile``: our processes run under cProfile, statistics written here.
    profile_dir: str | None = None
    #: ``--py-spy``: our processes run under ``py-spy record``, raw stacks written here.
    pyspy_dir: str | None = None
    #: Multiplies every message count (``--scale``).
    scale: float = 1.0
    #: pyzmq's copy mode: ``auto`` (its faster mode per size), ``on`` or ``off``.
    pyzmq_copy: str = "auto"
    #: ``--ours-env``: environment variables for our processes only (experiments such
    #: as glibc's ``MALLOC_MMAP_THRESHOLD_``).
    ours_env: dict[str, str] = field(default_factory=dict)
    _serial: itertools.count[int] = field(default_factory=itertools.count)

    def deadline(self) -> float:
        return time.monotonic() + self.timeout

    def ipc_endpoint(self) -> str:
        return f"ipc://{self.tmpdir}/b{next(self._serial)}.sock"

    def instrument(
        self, case: Case, variant: Variant, tag: str | None
    ) -> tuple[str | None, list[str]]:
        """The cProfile output path and the ``py-spy record`` command prefix for one of
        our processes (``tag`` names its role; None: not profiled)."""
        if tag is None or variant.impl != "ours":
            return None, []
        name = re.sub(r"[^A-Za-z0-9]+", "-", f"{case.id}-{variant.api_label}-{tag}").strip("-")
        prof = os.path.join(self.profile_dir, name + ".prof") if self.profile_dir else None
        prefix: list[str] = []
        if self.pyspy_dir:
            out = os.path.join(self.pyspy_dir, name + ".txt")
            # --nonblocking: sample without pausing the process, so it runs at full speed.
            # The one beside the interpreter (a virtualenv's) if it is not on PATH.
            exe = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
            # --function: one line per function (its first line), not per line executed.
            prefix = [exe, "record", "--nonblocking", "--function", "--rate", "1000"]
            prefix += ["--format", "raw", "--output", out, "--"]
        return prof, prefix

    def worker(
        self,
        case: Case,
        variant: Variant,
        role: str,
        params: dict[str, Any],
        *,
        tag: str | None = None,
        stdin: bool = False,
    ) -> Proc:
        """Start ``python -m bench.worker role``; ours is profiled as asked (``tag``)."""
        prof, prefix = self.instrument(case, variant, tag if role.startswith("ours.") else None)
        if prof:
            params = {**params, "profile": prof}
        env = self.ours_env if role.startswith("ours.") else None
        return Proc.worker(role, params, stdin=stdin, prefix=prefix, env=env)


#: The worker prefix of each implementation (``python -m bench.worker PREFIX.ROLE``).
PREFIX = {"ours": "ours", "libzmq": "zmq", "pyomq": "omq", "trio": "trio"}


def role(variant: Variant, name: str) -> str:
    """The worker role ``name`` of the variant's implementation."""
    return f"{PREFIX[variant.impl]}.{name}"


Measurement = dict[str, float]
RunFn = Callable[["Case", Variant, Settings], Measurement]


@dataclass
class Case:
    """One configuration, measured with each of ``variants``."""

    id: str
    scenario: str
    transport: str
    size: int
    variants: list[Variant]
    run: RunFn
    #: Messages (or round trips) per measurement, full and ``--quick``.
    count: int
    quick_count: int
    in_quick: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    #: Whether ``--quick`` measures pyomq here too (it does where its role is not
    #: already covered by another quick case, to keep the smoke run under a minute).
    quick_pyomq: bool = True

    def variants_for(self, settings: Settings) -> list[Variant]:
        """The variants measured in this run."""
        if settings.quick and not self.quick_pyomq:
            return [v for v in self.variants if v.impl != "pyomq"]
        return self.variants

    @property
    def kind(self) -> str:
        """The first part of the id: ``throughput``, ``proxy``, ``router``..."""
        return self.id.split("/")[0]

    def title(self, settings: Settings) -> str:
        """The scenario's name in the table."""
        if self.kind == "pubsub":
            return f"pub-sub 1->{self.subscribers(settings)}"
        if self.kind == "pubsub-zmqsubs":
            return f"pub alone 1->{self.subscribers(settings)} (libzmq subs)"
        if self.kind in ("router", "memory"):
            return self.scenario.format(n=self.peers(settings))
        return self.scenario

    def peers(self, settings: Settings) -> int:
        """Connected peers of a router or memory case (fewer in a quick run)."""
        return int(self.params["quick_peers" if settings.quick else "peers"])

    def subscribers(self, settings: Settings) -> int:
        """Subscriber processes of a pub/sub case (fewer in a quick run)."""
        return int(self.params["quick_subscribers" if settings.quick else "subscribers"])

    def messages(self, settings: Settings) -> int:
        if settings.quick:
            return self.quick_count
        return max(self.quick_count, int(self.count * settings.scale))


def size_label(size: int) -> str:
    """``16 B``, ``1 KiB``, ``64 KiB``, ``1 MiB`` (``-`` for 0: no messages)."""
    if size == 0:
        return "-"
    if size >= MIB and size % MIB == 0:
        return f"{size // MIB} MiB"
    if size >= KIB and size % KIB == 0:
        return f"{size // KIB} KiB"
    return f"{size} B"


def _rate(res: dict[str, Any], size: int, sender: dict[str, Any] | None = None) -> Measurement:
    """Rates from a receiver's result; CPU µs per message from both ends' if known."""
    elapsed = res["t1"] - res["t0"]
    if elapsed <= 0 or res["timed"] <= 0:
        raise BenchError(f"too few messages to time ({res}); raise the count")
    msgs = res["timed"] / elapsed
    m = {"msgs_per_s": msgs, "mb_per_s": msgs * size / 1e6, "elapsed_s": elapsed}
    if "cpu_s" in res:
        m["rx_cpu_us"] = res["cpu_s"] / res["timed"] * 1e6
    if "faults" in res:
        m["rx_faults_per_msg"] = res["faults"] / res["timed"]
    if "lost" in res:  # messages a pyomq publisher or proxy dropped (lossy receivers)
        m["lost"] = res["lost"]
    if "malloc_tuned" in res:  # whether our receiver's process ended with malloc tuned
        m["rx_malloc_tuned"] = float(res["malloc_tuned"])
    if sender and "cpu_s" in sender:
        m["tx_cpu_us"] = sender["cpu_s"] / sender["count"] * 1e6
    return m


def _pyzmq_copy(size: int, s: Settings) -> bool:
    """Whether pyzmq sends and receives with ``copy=True``.

    ``auto`` picks pyzmq's faster mode for the size: copying below 64 KiB (where
    ``copy=False`` only adds the cost of a Frame), zero-copy from 64 KiB, where it
    moves about twice the MB/s of copying on this machine.
    """
    if s.pyzmq_copy == "auto":
        return size < 64 * KIB
    return s.pyzmq_copy == "on"


# ---------------------------------------------------------------------- throughput


def _throughput(case: Case, variant: Variant, s: Settings) -> Measurement:
    count = case.messages(s)
    base = {"count": count, "size": case.size, "hwm": s.hwm, "api": variant.api}
    if case.kind == "curve":
        base["curve"] = True  # the bound PULL is the CURVE server (bench/_protocol.py)
    with Processes() as procs:
        deadline = s.deadline()
        if case.transport == "inproc":
            proc = procs.add(s.worker(case, variant, "ours.inproc", base, tag="inproc"))
            return _rate(proc.result(deadline), case.size)
        endpoint = "tcp://127.0.0.1:0" if case.transport == "tcp" else s.ipc_endpoint()
        extra: dict[str, Any] = {}
        if variant.impl == "ours":
            rx_role, tx_role = "ours.pull", "ours.push"
            extra = {"tune_allocator": variant.tuned}
        elif variant.impl == "trio":
            rx_role, tx_role = "trio.stream_rx", "trio.stream_tx"
        else:
            rx_role, tx_role = role(variant, "pull"), role(variant, "push")
            extra = {"copy": _pyzmq_copy(case.size, s)}
        rx_params = {**base, **extra, "endpoint": endpoint, "bind": True}
        rx = procs.add(s.worker(case, variant, rx_role, rx_params, tag="pull"))
        (bound,) = rx.ready(deadline)
        tx_params = {**base, **extra, "endpoint": bound, "bind": False}
        tx = procs.add(s.worker(case, variant, tx_role, tx_params, tag="push"))
        res = rx.result(deadline)
        sender = tx.result(deadline)
    return _rate(res, case.size, sender)


# ---------------------------------------------------------------------- latency


def _latency(case: Case, variant: Variant, s: Settings) -> Measurement:
    count = case.messages(s)
    warmup = case.params["warmup"] if not s.quick else 20
    if variant.impl == "trio":
        server_role, client_role = "trio.pong", "trio.ping"
    else:
        server_role, client_role = role(variant, "rep"), role(variant, "req")
    endpoint = "tcp://127.0.0.1:0" if case.transport == "tcp" else s.ipc_endpoint()
    with Processes() as procs:
        deadline = s.deadline()
        server_params = {"endpoint": endpoint, "bind": True, "count": warmup + count}
        server = procs.add(
            s.worker(case, variant, server_role, {**server_params, "hwm": s.hwm}, tag="rep")
        )
        (bound,) = server.ready(deadline)
        client_params = {"endpoint": bound, "count": count, "warmup": warmup}
        client = procs.add(
            s.worker(
                case,
                variant,
                client_role,
                {**client_params, "size": case.size, "hwm": s.hwm},
                tag="req",
            )
        )
        res = client.result(deadline)
        server.result(deadline)
    return {"median_us": res["median_us"], "p99_us": res["p99_us"]}


# ---------------------------------------------------------------------- proxy


def _start_proxy(
    procs: Processes, case: Case, variant: Variant, s: Settings, deadline: float
) -> tuple[Proc, str, str]:
    """Start the proxy under test; return it and its frontend and backend endpoints."""
    front, back = case.params["frontend"], case.params["backend"]
    any_port = "tcp://127.0.0.1:0"
    if variant.impl != "ours":
        proc = procs.add(
            Proc.worker(
                role(variant, "proxy"),
                {
                    "frontend": front,
                    "backend": back,
                    "frontend_endpoint": any_port,
                    "backend_endpoint": any_port,
                    "bind": True,
                    "hwm": s.hwm,
                    "nodrop": True,
                },
            )
        )
        (front_ep,) = proc.ready(deadline)
        (back_ep,) = proc.ready(deadline)
        return proc, front_ep, back_ep
    prof, prefix = s.instrument(case, variant, "proxy")
    argv = [*prefix, sys.executable]
    if prof:
        argv += ["-m", "cProfile", "-o", prof]
    argv += [
        "-m", "proxy",
        "--frontend", f"{front}@{any_port}",
        "--backend", f"{back}@{any_port}",
        "--sndhwm", str(s.hwm), "--rcvhwm", str(s.hwm),
        "--linger", "0", "--stats-interval", "0",
    ]  # fmt: skip
    if back == "XPUB":
        argv.append("--xpub-nodrop")
    proc = procs.add(Proc("python -m proxy", argv, wrapped=bool(prefix), env=s.ours_env))
    front_ep = proc.expect(f"frontend {front} bound to", deadline)
    back_ep = proc.expect(f"backend {back} bound to", deadline)
    proc.expect("zmtp-proxy: running", deadline)
    return proc, front_ep, back_ep


def _proxy(case: Case, variant: Variant, s: Settings) -> Measurement:
    count = case.messages(s)
    copy = _pyzmq_copy(case.size, s)
    # ``proxy-scale`` cases: ``api`` "1proc" or "2procs" proxy processes, the pyzmq
    # client and worker each connected to all of them (README "Scaling past one core").
    n = 2 if variant.api == "2procs" else 1
    with Processes() as procs:
        deadline = s.deadline()
        started = [_start_proxy(procs, case, variant, s, deadline) for _ in range(n)]
        proxies = [proxy for proxy, _, _ in started]
        fronts = [front for _, front, _ in started]
        backs = [back for _, _, back in started]
        front_ep: str | list[str] = fronts[0] if n == 1 else fronts
        back_ep: str | list[str] = backs[0] if n == 1 else backs
        c0 = sum(proxy.cpu_seconds() for proxy in proxies)
        base = {"count": count, "size": case.size, "hwm": s.hwm, "copy": copy}
        if case.params["frontend"] == "XSUB":
            res = _forward(
                procs, case, base, (front_ep, back_ep), deadline, lossy=variant.impl == "pyomq"
            )
        elif case.params["frontend"] == "PULL":
            rx = procs.add(Proc.worker("zmq.pull", {**base, "endpoint": back_ep}))
            rx.ready(deadline)
            tx = procs.add(Proc.worker("zmq.push", {**base, "endpoint": front_ep}))
            res = rx.result(deadline)
            tx.result(deadline)
        else:
            worker = procs.add(
                Proc.worker("zmq.dealer_worker", {**base, "endpoint": back_ep, "router": n > 1})
            )
            worker.ready(deadline)
            client = procs.add(
                Proc.worker(
                    "zmq.dealer_client",
                    {**base, "endpoint": front_ep, "window": case.params["window"]},
                )
            )
            res = client.result(deadline)
            worker.result(deadline)
        c1 = sum(proxy.cpu_seconds() for proxy in proxies)
        # Our proxy stops on SIGTERM (and writes its profile); zmq.proxy just dies.
        for proxy in proxies:
            proxy.terminate(time.monotonic() + 10)
    m = _rate(res, case.size)
    m.pop("rx_cpu_us", None)  # the pyzmq receiver's: not what is compared here
    m.pop("rx_faults_per_msg", None)
    # The proxy's CPU per message moved in, handshakes and all (clock ticks: coarse);
    # the forwarder takes ``count`` from each publisher.
    moved = count * (case.params["publishers"] if case.params["frontend"] == "XSUB" else 1)
    m["proxy_cpu_us"] = (c1 - c0) / moved * 1e6
    return m


def _forward(
    procs: Processes,
    case: Case,
    base: dict[str, Any],
    endpoints: tuple[str | list[str], str | list[str]],
    deadline: float,
    *,
    lossy: bool,
) -> dict[str, Any]:
    """The forwarder: pyzmq PUBs connected to its XSUB, pyzmq SUBs to its XPUB.

    Every publisher probes (with its id) until every subscriber has seen a probe of
    each; then GO, and each sends ``count`` data messages (no drop anywhere, so each
    subscriber receives publishers x count).  Returns the deliveries over the window
    from the first subscriber's first data message to the last one's last.
    """
    front_ep, back_ep = endpoints
    pubs_n, subs_n = case.params["publishers"], case.params["subscribers"]
    # pyomq's XPUB drops at its mark (no working nodrop): count what arrives.
    sub_params = {**base, "endpoint": back_ep, "publishers": pubs_n, "lossy": lossy}
    subs = [procs.add(Proc.worker("zmq.sub", sub_params)) for _ in range(subs_n)]
    pubs = [
        procs.add(
            Proc.worker(
                "zmq.pub",
                {**base, "endpoint": front_ep, "connect": True, "id": i},
                stdin=True,
            )
        )
        for i in range(pubs_n)
    ]
    for pub in pubs:
        pub.ready(deadline)
    for sub in subs:
        sub.ready(deadline)
    for pub in pubs:
        pub.say("GO")
    results = [sub.result(deadline) for sub in subs]
    for pub in pubs:
        pub.result(deadline)
    return _window(results)


def _window(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several receivers' results as one: all deliveries over the span from the first
    receiver's first timed message to the last one's last."""
    t0 = min(r["t0"] for r in results)
    t1 = max(r["t1"] for r in results)
    lost = sum(r.get("lost", 0) for r in results)
    return {"t0": t0, "t1": t1, "timed": sum(r["timed"] for r in results), "lost": lost}


# ---------------------------------------------------------------------- pub/sub


def _pubsub(case: Case, variant: Variant, s: Settings) -> Measurement:
    count = case.messages(s)
    subscribers = case.subscribers(s)
    # ``pubsub-zmqsubs``: pyzmq subscribers whoever publishes (the publisher alone).
    sub_role = "zmq.sub" if case.kind == "pubsub-zmqsubs" else role(variant, "sub")
    # pyomq's PUB drops at its mark whatever OMQ_ON_MUTE says: its subscribers count
    # what arrives (bench._libzmq._count_until_quiet).
    base = {"count": count, "size": case.size, "hwm": s.hwm, "api": variant.api,
            "copy": _pyzmq_copy(case.size, s), "lossy": variant.impl == "pyomq"}  # fmt: skip
    with Processes() as procs:
        deadline = s.deadline()
        pub_params = {**base, "endpoint": "tcp://127.0.0.1:0"}
        pub = procs.add(
            s.worker(case, variant, role(variant, "pub"), pub_params, tag="pub", stdin=True)
        )
        (endpoint,) = pub.ready(deadline)
        # Only the first subscriber is profiled: they all do the same.
        subs = [
            procs.add(
                s.worker(
                    case,
                    variant,
                    sub_role,
                    {**base, "endpoint": endpoint},
                    tag="sub" if i == 0 else None,
                )
            )
            for i in range(subscribers)
        ]
        for sub in subs:
            sub.ready(deadline)  # each has received a probe: it is subscribed
        pub.say("GO")
        results = [sub.result(deadline) for sub in subs]
        sender = pub.result(deadline)
    return _rate(_window(results), case.size, sender)


# ---------------------------------------------------------------------- many peers


def _router(case: Case, variant: Variant, s: Settings) -> Measurement:
    """A ROUTER (the variant's) bound, ``peers`` pyzmq DEALERs (one process) connected,
    each saying hello first; then they send ``count`` messages round-robin, ``burst``
    per peer per turn, and the ROUTER times them; they disconnect after that.

    The window runs from GO (the DEALERs' clock, the same monotonic clock) to the
    ROUTER's last message: with 1,000 connections the readers can queue much of the
    stream before the application takes its first message, which a window opened at
    that first message would leave out."""
    count, peers = case.messages(s), case.peers(s)
    base = {"count": count, "size": case.size, "hwm": s.hwm, "peers": peers}
    with Processes() as procs:
        deadline = s.deadline()
        params = {**base, "endpoint": "tcp://127.0.0.1:0", "bind": True, "api": variant.api}
        rx = procs.add(s.worker(case, variant, role(variant, "router"), params, tag="router"))
        (endpoint,) = rx.ready(deadline)
        tx_params = {**base, "endpoint": endpoint, "burst": case.params["burst"]}
        tx = procs.add(Proc.worker("zmq.dealers", tx_params, stdin=True))
        tx.ready(deadline)  # connected, hellos sent
        rx.ready(deadline)  # every hello received
        tx.say("GO")
        res = rx.result(deadline)
        tx.say("DONE")  # the DEALERs disconnect only now, out of the window
        sent = tx.result(deadline)
    if "t_go" in sent:
        res = {**res, "t0": sent["t_go"], "timed": res["count"]}
    return _rate(res, case.size)


def _xpub_match(case: Case, variant: Variant, s: Settings) -> Measurement:
    """The variant's PUB, one pyzmq SUB holding ``subscriptions`` topics; every data
    message matches the last topic subscribed, so the publisher matches each message
    against all of them (a scan) or walks the topic's few bytes (a trie)."""
    count, n = case.messages(s), case.params["subscriptions"]
    base = {"count": count, "size": case.size, "hwm": s.hwm, "api": variant.api,
            "copy": True, "lossy": variant.impl == "pyomq"}  # fmt: skip
    with Processes() as procs:
        deadline = s.deadline()
        topic = f"{n - 1:07d}"
        pub_params = {**base, "endpoint": "tcp://127.0.0.1:0", "topic": topic}
        pub = procs.add(
            s.worker(case, variant, role(variant, "pub"), pub_params, tag="pub", stdin=True)
        )
        (endpoint,) = pub.ready(deadline)
        sub_params = {**base, "endpoint": endpoint, "subscriptions": n, "paced": base["lossy"]}
        sub = procs.add(Proc.worker("zmq.sub", sub_params))
        sub.ready(deadline)  # every subscription reached the publisher
        pub.say("GO")
        res = sub.result(deadline)
        sender = pub.result(deadline)
    return _rate(res, case.size, sender)


def _memory(case: Case, variant: Variant, s: Settings) -> Measurement:
    """Resident memory of a process holding a bound ROUTER (the variant's) with
    ``peers`` idle connections (pyzmq DEALERs that said hello): per connection (the
    growth from before the first) and in all."""
    peers = case.peers(s)
    with Processes() as procs:
        deadline = s.deadline()
        params = {"endpoint": "tcp://127.0.0.1:0", "bind": True, "peers": peers,
                  "hwm": s.hwm}  # fmt: skip
        server = procs.add(s.worker(case, variant, role(variant, "mem_router"), params))
        (endpoint,) = server.ready(deadline)
        dealers = procs.add(
            Proc.worker(
                "zmq.dealers",
                {"endpoint": endpoint, "peers": peers, "count": 0, "size": 16},
                stdin=True,
            )
        )
        dealers.ready(deadline)
        res = server.result(deadline)
        dealers.say("GO")
        dealers.result(deadline)
    return {
        "rss_per_conn_kib": (res["rss1"] - res["rss0"]) / peers / 1024,
        "rss_mib": res["rss1"] / MIB,
    }


# ---------------------------------------------------------------------- the cases

_OURS_APIS = [Variant("ours", "msg"), Variant("ours", "batch")]
#: Both APIs again with Context(tune_allocator=True): only where bodies are read in
#: place (128 KiB or more), the only case where the setting does anything.
_OURS_TUNED = [Variant("ours", "msg", tuned=True), Variant("ours", "batch", tuned=True)]
_LIBZMQ = Variant("libzmq", "-")
_PYOMQ = Variant("pyomq", "-")
#: The other implementations of pyzmq's API; each row is judged against the best.
_PEERS = [_LIBZMQ, _PYOMQ]

# Messages per measurement, sized for roughly 0.3-1.5 s of the slowest variant on a
# 2-core machine (full run: a few minutes).  Quick counts only prove that it runs.
_THROUGHPUT_COUNTS = {16: 100_000, KIB: 60_000, 64 * KIB: 5_000, MIB: 400}
_QUICK_COUNTS = {16: 5000, KIB: 5000, 64 * KIB: 1000, MIB: 50}
#: CURVE seals and opens every part: fewer messages for the same time.
_CURVE_COUNTS = {16: 60_000, KIB: 40_000, 64 * KIB: 3_000, MIB: 200}


def _cases() -> list[Case]:
    cases: list[Case] = []
    for transport in ("tcp", "ipc", "inproc"):
        for size in (16, KIB, 64 * KIB, MIB):
            variants = list(_OURS_APIS)
            if transport != "inproc":
                variants += [*(_OURS_TUNED if size == MIB else []), *_PEERS]
            cases.append(
                Case(
                    id=f"throughput/{transport}/{size_label(size).replace(' ', '')}",
                    scenario="push-pull",
                    transport=transport,
                    size=size,
                    variants=variants,
                    run=_throughput,
                    count=_THROUGHPUT_COUNTS[size],
                    quick_count=_QUICK_COUNTS[size],
                    in_quick=size == 16 or (size == 64 * KIB and transport == "tcp"),
                    quick_pyomq=size == 16 and transport == "tcp",
                )
            )
    # CURVE (issue 12): the same streams, sealed, against libzmq and pyomq with CURVE.
    for transport in ("tcp", "ipc"):
        for size in (16, KIB, 64 * KIB, MIB):
            cases.append(
                Case(
                    id=f"curve/{transport}/{size_label(size).replace(' ', '')}",
                    scenario="CURVE push-pull",
                    transport=transport,
                    size=size,
                    variants=[*_OURS_APIS, *(_OURS_TUNED if size >= 64 * KIB else []), *_PEERS],
                    run=_throughput,
                    count=_CURVE_COUNTS[size],
                    quick_count=_QUICK_COUNTS[size],
                    in_quick=size == 16 and transport == "tcp",
                )
            )
    for transport in ("tcp", "ipc"):
        cases.append(
            Case(
                id=f"latency/{transport}/64B",
                scenario="req-rep latency",
                transport=transport,
                size=64,
                variants=[Variant("ours", "msg"), *_PEERS],
                run=_latency,
                count=5000,
                quick_count=200,
                in_quick=transport == "tcp",
                params={"warmup": 500},
            )
        )
    for front, back, name, window in (
        ("PULL", "PUSH", "proxy pull-push", 0),
        ("ROUTER", "DEALER", "proxy router-dealer", 500),
        ("XSUB", "XPUB", "forwarder xsub-xpub 2->2", 0),
    ):
        for size in (16, 64 * KIB):
            cases.append(
                Case(
                    id=f"proxy/{front.lower()}-{back.lower()}/{size_label(size).replace(' ', '')}",
                    scenario=name,
                    transport="tcp",
                    size=size,
                    variants=[Variant("ours", "proxy"), *_PEERS],
                    run=_proxy,
                    # The forwarder's count is per publisher (2): as many messages in as
                    # the other proxies', each delivered to 2 subscribers.
                    count=(100_000 if size == 16 else 10_000) // (2 if front == "XSUB" else 1),
                    quick_count=2000 if size == 16 else 200,
                    in_quick=size == 16,
                    quick_pyomq=front == "XSUB",
                    params={
                        "frontend": front,
                        "backend": back,
                        "window": window,
                        "publishers": 2,
                        "subscribers": 2,
                    },
                )
            )
    # Scaling past one core: one proxy process against two, in the same run (and one
    # zmq.proxy for scale).  A DEALER client keeps a window in flight over both.
    cases.append(
        Case(
            id="proxy-scale/router-dealer/16B",
            scenario="proxy processes router-dealer",
            transport="tcp",
            size=16,
            variants=[Variant("ours", "1proc"), Variant("ours", "2procs"), _LIBZMQ],
            run=_proxy,
            count=100_000,
            quick_count=2000,
            in_quick=True,
            params={"frontend": "ROUTER", "backend": "DEALER", "window": 500},
        )
    )
    # The floor: plain trio, no ZMTP (bench/_floor.py), against the same libzmq figures.
    floor = [Variant("trio", "raw"), _LIBZMQ]
    cases.append(
        Case(
            id="floor/stream/16B",
            scenario="floor: trio stream",
            transport="tcp",
            size=16,
            variants=floor,
            run=_throughput,
            count=_THROUGHPUT_COUNTS[16],
            quick_count=_QUICK_COUNTS[16],
        )
    )
    cases.append(
        Case(
            id="floor/pingpong/64B",
            scenario="floor: trio ping-pong",
            transport="tcp",
            size=64,
            variants=floor,
            run=_latency,
            count=5000,
            quick_count=200,
            params={"warmup": 500},
        )
    )
    for kind, name in (("pubsub", "pub-sub"), ("pubsub-zmqsubs", "pub-sub libzmq subs")):
        cases.append(
            Case(
                id=f"{kind}/tcp/16B",
                scenario=name,
                transport="tcp",
                size=16,
                variants=[*_OURS_APIS, *_PEERS],
                run=_pubsub,
                count=30_000,
                quick_count=3000,
                in_quick=True,
                quick_pyomq=kind == "pubsub-zmqsubs",
                params={"subscribers": 10, "quick_subscribers": 3},
            )
        )
    # Many peers: one ROUTER, N pyzmq DEALERs sending round-robin.
    for peers in (1, 10, 100, 1000):
        cases.append(
            Case(
                id=f"router/tcp/{peers}peers",
                scenario="router {n} peers",
                transport="tcp",
                size=16,
                variants=[*_OURS_APIS, *_PEERS],
                run=_router,
                # 300,000 (100,000 before 2026-12-07): at 1,000 peers a one-off full
                # collection of the objects the connections' setup made (60-80 ms for
                # ours) could land in a 0.1-0.3 s window and dominate it.
                count=300_000,
                quick_count=2000,
                in_quick=peers == 10,
                # Bursts of 10 per peer and turn: one message per peer and turn, the
                # pyzmq sender tops out at ~60k msg/s over 1,000 sockets (libzmq's and
                # pyomq's ROUTERs alike), which would measure the sender.
                params={
                    "peers": peers,
                    "quick_peers": peers,
                    "burst": 10,
                    **({"base": "router/tcp/1peers"} if peers > 1 else {}),
                },
            )
        )
    # Many topics: a PUB matching each message against N subscriptions.
    for n in (1, 1000, 100_000):
        cases.append(
            Case(
                id=f"xpub-match/tcp/{n}subs",
                scenario=f"pub matching {n} subs",
                transport="tcp",
                size=16,
                # pyomq 0.21 delivers nothing once it holds 20,000 subscriptions (even
                # paced): not measured at 100,000 (RESULTS.md).
                variants=[*_OURS_APIS, _LIBZMQ, *([_PYOMQ] if n < 100_000 else [])],
                run=_xpub_match,
                # 200,000: a one-off full collection of the garbage collector over the
                # 100,000-subscription tree must not be most of the timed window.
                count=200_000,
                quick_count=2000,
                in_quick=n == 1000,
                params={
                    "subscriptions": n,
                    **({"base": "xpub-match/tcp/1subs"} if n > 1 else {}),
                },
            )
        )
    # Memory: a ROUTER holding N idle connections.
    cases.append(
        Case(
            id="memory/tcp/1000conns",
            scenario="memory {n} idle conns",
            transport="tcp",
            size=0,
            variants=[Variant("ours", "-"), *_PEERS],
            run=_memory,
            count=1,
            quick_count=1,
            in_quick=True,
            params={"peers": 1000, "quick_peers": 100},
        )
    )
    return cases


CASES = _cases()
