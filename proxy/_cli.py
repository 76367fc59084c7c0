"""``python -m proxy`` / ``zmtp-proxy``: run a ZeroMQ proxy from the command line.

Exit status: 0 after SIGINT, SIGTERM or a TERMINATE command (and after a successful
``--demo``); 1 when something fails at run time (an address already in use, a second
signal during the linger flush); 2 for bad arguments, with a one-line error.

Output goes to stdout, one flushed line at a time so that a supervisor (or a test)
can read it as it comes: the sockets and their resolved endpoints, the live
statistics line, and at the end a ``final statistics:`` line with ``key=value``
counts.  ``--quiet`` keeps stdout silent.  Log messages go to stderr.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import trio

import zmtp
from zmtp import SocketType, native_enabled, tune_allocator, validate_option
from zmtp.auth import Authenticator

from ._console import (
    PROG,
    JsonFormatter,
    Output,
    Stopper,
    error,
    final_line,
    print_statistics,
)
from ._demo import demo
from ._endpoints import SocketSpec, parse_socket_spec
from ._health import SocketHealth, SocketWatch
from ._proxy import CAPTURE_TYPES, Proxy
from ._security import PASSWORD_ENV, Security, SecurityError, parse_plain_user

if TYPE_CHECKING:
    from ._metrics import MetricsServer

__all__ = ["DEFAULT_BACKEND", "DEFAULT_FRONTEND", "main"]

#: Without --frontend/--backend: a shared queue, clients on 5559, workers on 5560
#: (the ports of the ZeroMQ guide's broker examples).
DEFAULT_FRONTEND = "ROUTER@tcp://127.0.0.1:5559"
DEFAULT_BACKEND = "DEALER@tcp://127.0.0.1:5560"

#: libzmq's default linger is -1 (wait for ever), which would make a proxy whose
#: peers died hang on Ctrl-C; a command-line tool gives queued messages one second.
DEFAULT_LINGER_MS = 1000

#: --reconnect-on-protocol-error without --reconnect-ivl-max: the backoff's cap.
RETRY_BACKOFF_MAX_MS = 30000

#: What the WARNING about an abandoned upstream tells the operator.
ABANDONED_ADVICE = (
    "Check what listens there, then restart the proxy, or run it with "
    "--reconnect-on-protocol-error to keep retrying with backoff."
)

CONTROL_TYPES = frozenset(
    {
        SocketType.REP,
        SocketType.PAIR,
        SocketType.SUB,
        SocketType.ROUTER,
        SocketType.DEALER,
        SocketType.PULL,
    }
)

#: Numeric socket options: (flag, option name, metavar, help).
_INT_OPTIONS = (
    ("--sndhwm", "sndhwm", "N", "outbound high-water mark per peer, in messages (default 1000)"),
    ("--rcvhwm", "rcvhwm", "N", "inbound high-water mark per peer, in messages (default 1000)"),
    (
        "--linger",
        "linger",
        "MS",
        f"flush queued messages for up to MS on shutdown; -1 waits for ever "
        f"(default {DEFAULT_LINGER_MS})",
    ),
    ("--reconnect-ivl", "reconnect_ivl", "MS", "wait before reconnecting (default 100)"),
    ("--reconnect-ivl-max", "reconnect_ivl_max", "MS", "cap of the reconnect backoff"),
    ("--heartbeat-ivl", "heartbeat_ivl", "MS", "send a PING every MS (default 0: off)"),
    ("--heartbeat-timeout", "heartbeat_timeout", "MS", "drop a peer silent for MS after a PING"),
    ("--heartbeat-ttl", "heartbeat_ttl", "MS", "TTL announced in our PINGs"),
    ("--handshake-ivl", "handshake_ivl", "MS", "drop a connection whose handshake takes longer"),
    ("--maxmsgsize", "maxmsgsize", "BYTES", "drop peers that send larger frames"),
)
#: Boolean options and the socket types they apply to (None: every type).
_BOOL_OPTIONS: tuple[tuple[str, str, frozenset[SocketType] | None, str], ...] = (
    ("--immediate", "immediate", None, "queue messages only to completed connections"),
    (
        "--xpub-verbose",
        "xpub_verbose",
        frozenset({SocketType.XPUB}),
        "pass every subscription upstream, not only new ones",
    ),
    (
        "--xpub-nodrop",
        "xpub_nodrop",
        frozenset({SocketType.XPUB, SocketType.PUB}),
        "block at the high-water mark instead of dropping (backpressure to publishers)",
    ),
    (
        "--reconnect-on-protocol-error",
        "reconnect_on_protocol_error",
        None,
        "keep reconnecting to an endpoint after a protocol error (libzmq gives up on it "
        "for good); retries back off up to --reconnect-ivl-max, 30000 ms unless given",
    ),
    (
        "--router-handover",
        "router_handover",
        frozenset({SocketType.ROUTER}),
        "a reconnecting peer with a known identity takes its route over",
    ),
)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the whole usage by default)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: None = None
    ) -> argparse.Namespace:
        """As argparse's, but the unrecognized arguments it names have whatever
        follows a misspelt ``--plain...`` or ``--pass...`` flag hidden: that may be
        a password."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error("unrecognized arguments: " + " ".join(_redacted(extras)))
        return parsed


def _redacted(words: Sequence[str]) -> list[str]:
    out: list[str] = []
    hide = False
    for word in words:
        if hide and not word.startswith("-"):
            out.append("***")
            hide = False
            continue
        flag, eq, _value = word.partition("=")
        secret = word.startswith("-") and any(w in flag.lower() for w in ("plain", "pass"))
        out.append(f"{flag}=***" if secret and eq else word)
        hide = secret and not eq
    return out


def _spec_type(
    role: str, allowed: frozenset[SocketType] | None = None
) -> Callable[[str], SocketSpec]:
    def convert(text: str) -> SocketSpec:
        try:
            spec = parse_socket_spec(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if allowed is not None and spec.socket_type not in allowed:
            names = ", ".join(sorted(t.name for t in allowed))
            raise argparse.ArgumentTypeError(
                f"a {role} socket must be one of {names}, not {spec.socket_type.name}"
            )
        return spec

    return convert


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if host.startswith("[") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:9100 or [::1]:9100"
        )
    return host, int(port)


def _plain_user(text: str) -> tuple[str, str]:
    try:
        return parse_plain_user(text)
    except SecurityError as exc:
        # The message names the flag already; argparse prefixes it with the flag again.
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--plain-user: ")) from None


def _make_parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        description=(
            "Run a ZeroMQ proxy (like zmq_proxy_steerable) in pure Python. "
            "Sockets are TYPE@ENDPOINT to bind or TYPE>ENDPOINT to connect, "
            "with comma-separated lists (CZMQ style), e.g. ROUTER@tcp://*:5559 or "
            "XSUB>tcp://10.0.0.1:5556,>tcp://10.0.0.2:5556. Without --frontend and "
            f"--backend it runs a queue: {DEFAULT_FRONTEND} and {DEFAULT_BACKEND}."
        ),
        epilog=(
            "Control commands (on --control): PAUSE, RESUME, TERMINATE, STATISTICS "
            "(8 frames of uint64, host order, libzmq's layout). Note that libzmq 4.3.5 "
            "swaps PAUSE and RESUME; this proxy does what the names say. "
            "SIGINT/SIGTERM stop the proxy, print the final statistics, flush for "
            "--linger ms and exit 0; a second signal exits at once."
        ),
        allow_abbrev=False,
    )
    sockets = parser.add_argument_group("sockets")
    sockets.add_argument(
        "--frontend", type=_spec_type("frontend"), metavar="SPEC", help="e.g. ROUTER@tcp://*:5559"
    )
    sockets.add_argument(
        "--backend", type=_spec_type("backend"), metavar="SPEC", help="e.g. DEALER@tcp://*:5560"
    )
    sockets.add_argument(
        "--capture",
        type=_spec_type("capture", CAPTURE_TYPES),
        metavar="SPEC",
        help="gets a copy of every message, both directions (PUB, DEALER, PUSH or PAIR); "
        "copies it cannot take at once are dropped and counted",
    )
    sockets.add_argument(
        "--control",
        type=_spec_type("control", CONTROL_TYPES),
        metavar="SPEC",
        help="receives PAUSE/RESUME/TERMINATE/STATISTICS (REP, PAIR or SUB; "
        "ROUTER, DEALER and PULL work too)",
    )
    opts = parser.add_argument_group("socket options (applied to every socket they fit)")
    for flag, _name, metavar, text in _INT_OPTIONS:
        opts.add_argument(flag, type=int, metavar=metavar, help=text)
    for flag, _name, _types, text in _BOOL_OPTIONS:
        opts.add_argument(flag, action="store_true", help=text)
    sec = parser.add_argument_group(
        "security",
        "For --frontend and --backend; --capture and --control stay NULL unless "
        "--secure-all. Sockets that bind (@) are servers, sockets that connect (>) are "
        "clients; CURVE and PLAIN do not mix. Without a flag, everything is NULL.",
    )
    sec.add_argument(
        "--curve-secret",
        metavar="FILE",
        help="this proxy's CURVE certificate (a .key_secret file, see "
        "zmtp.auth.create_certificates): bound sockets become CURVE servers with it, "
        "connected ones CURVE clients (which need --curve-server)",
    )
    sec.add_argument(
        "--curve-allow",
        metavar="DIR|any",
        help="for bound sockets: let in only the client keys of the public "
        "certificates (*.key) in DIR, read at start; default any: every client key "
        "(the connection is still encrypted and the proxy authenticated)",
    )
    sec.add_argument(
        "--curve-server",
        metavar="FILE",
        help="for connected sockets: the public certificate (.key) of the server they connect to",
    )
    sec.add_argument(
        "--plain-passwords",
        metavar="FILE",
        help="bound sockets become PLAIN servers letting in the users of FILE: "
        "user=password lines, # comments, blank lines",
    )
    sec.add_argument(
        "--plain-user",
        type=_plain_user,
        metavar="USER:PASSWORD",
        help="connected sockets become PLAIN clients with these credentials; give just "
        f"USER to read the password from ${PASSWORD_ENV} instead of the command line "
        "(where ps shows it)",
    )
    sec.add_argument(
        "--secure-all",
        action="store_true",
        help="apply the security flags to --capture and --control too",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--stats-interval",
        type=float,
        metavar="SECONDS",
        help="print messages, bytes and rates per direction every SECONDS; 0 turns it "
        "off (default: 1 on a terminal, else 0)",
    )
    out.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    out.add_argument(
        "--metrics",
        type=_host_port,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (needs the "
        "prometheus_client package: pip install 'zmtp[metrics]'); port 0 picks one",
    )
    out.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="log lines on stderr as text (default) or one JSON object each",
    )
    out.add_argument(
        "--no-tune-allocator",
        action="store_true",
        help="keep glibc's default malloc thresholds (by default they are raised, which "
        "makes large messages several times cheaper to receive; see zmtp.tune_allocator; "
        "ZMTP_NATIVE=0 in the environment also keeps them)",
    )
    out.add_argument(
        "--no-tune-gc",
        action="store_true",
        help="keep Python's default garbage-collector settings (by default the objects "
        "of the start-up are frozen and the youngest generation is collected every "
        f"{GC_THRESHOLD:,} allocations instead of 700: a proxy makes a list per message, "
        "and the default collections cost it a fifth of its CPU at 16 B)",
    )
    out.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="logging level on stderr (default WARNING)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run a short self-contained demonstration (a queue with clients and workers) and exit",
    )
    parser.add_argument(
        "--curve",
        action="store_true",
        help="with --demo: run the demonstration over CURVE, with throwaway certificates "
        "and an allow list of the demo's clients and workers",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {zmtp.__version__}")
    return parser


@dataclass
class Config:
    """Everything the command line decided."""

    frontend: SocketSpec
    backend: SocketSpec
    capture: SocketSpec | None = None
    control: SocketSpec | None = None
    defaults_used: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    bool_options: dict[str, frozenset[SocketType] | None] = field(default_factory=dict)
    stats_interval: float = 0.0
    quiet: bool = False
    demo: bool = False
    #: Raise glibc's malloc thresholds (at start, and let the Context do so too).
    tune_allocator: bool = True
    #: Freeze the start-up's objects and collect the young generation less often.
    tune_gc: bool = True
    #: Where to serve Prometheus metrics, if anywhere.
    metrics: tuple[str, int] | None = None
    #: CURVE or PLAIN, per socket (see proxy._security).
    security: Security = field(default_factory=Security)
    #: --demo --curve.
    demo_curve: bool = False

    def options_for(self, socket_type: SocketType) -> dict[str, Any]:
        """The socket options that apply to a socket of this type."""
        opts = dict(self.options)
        for name, types in self.bool_options.items():
            if types is None or socket_type in types:
                opts[name] = True
        return opts


def _config(parser: _Parser, args: argparse.Namespace, stdout: TextIO) -> Config:
    if (args.frontend is None) != (args.backend is None):
        parser.error("give both --frontend and --backend, or neither for the default queue")
    if args.demo and args.frontend is not None:
        parser.error("--demo runs its own queue; it takes no --frontend/--backend")
    if args.curve and not args.demo:
        parser.error("--curve goes with --demo; a proxy of your own takes --curve-secret FILE")
    security_flags = [
        flag
        for flag, value in (
            ("--curve-secret", args.curve_secret),
            ("--curve-allow", args.curve_allow),
            ("--curve-server", args.curve_server),
            ("--plain-passwords", args.plain_passwords),
            ("--plain-user", args.plain_user),
            ("--secure-all", args.secure_all or None),
        )
        if value is not None
    ]
    if args.demo and security_flags:
        parser.error(
            f"--demo makes its own certificates (--demo --curve); it takes no {security_flags[0]}"
        )
    defaults = args.frontend is None
    frontend = args.frontend or parse_socket_spec(DEFAULT_FRONTEND)
    backend = args.backend or parse_socket_spec(DEFAULT_BACKEND)
    interval = args.stats_interval
    if interval is None:
        interval = 1.0 if stdout.isatty() else 0.0
    if not math.isfinite(interval) or interval < 0:
        parser.error(f"argument --stats-interval: must be >= 0 seconds, not {interval}")
    cfg = Config(
        frontend,
        backend,
        args.capture,
        args.control,
        defaults_used=defaults,
        stats_interval=interval,
        quiet=args.quiet,
        demo=args.demo,
        tune_allocator=not args.no_tune_allocator and native_enabled(),
        tune_gc=not args.no_tune_gc,
    )
    try:
        cfg.security = Security.from_flags(
            curve_secret=args.curve_secret,
            curve_allow=args.curve_allow,
            curve_server=args.curve_server,
            plain_passwords=args.plain_passwords,
            plain_user=args.plain_user,
            secure_all=args.secure_all,
            sockets={
                "frontend": frontend,
                "backend": backend,
                "capture": args.capture,
                "control": args.control,
            },
        )
    except SecurityError as exc:
        parser.error(str(exc))
    cfg.demo_curve = args.curve
    cfg.options["linger"] = DEFAULT_LINGER_MS
    for flag, name, _metavar, _text in _INT_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            cfg.options[name] = value
            try:
                validate_option(SocketType.DEALER, name, value)
            except (ValueError, TypeError) as exc:
                parser.error(f"argument {flag}: {exc}")
    for _flag, name, types, _text in _BOOL_OPTIONS:
        if getattr(args, name):
            cfg.bool_options[name] = types
    if args.reconnect_on_protocol_error and args.reconnect_ivl_max is None:
        # A peer that breaks the protocol will likely break it again: back off.
        cfg.options["reconnect_ivl_max"] = RETRY_BACKOFF_MAX_MS
    if args.metrics is not None:
        try:
            import prometheus_client  # noqa: F401, PLC0415  (an optional dependency)
        except ImportError:
            parser.error(
                "argument --metrics: needs the prometheus_client package "
                "(pip install 'zmtp[metrics]')"
            )
        cfg.metrics = args.metrics
    return cfg


# ---------------------------------------------------------------------- output

# ---------------------------------------------------------------------- running


class SocketSetupError(Exception):
    """A socket could not be created, bound or connected; the message says which."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


async def open_socket(
    ctx: zmtp.Context,
    role: str,
    spec: SocketSpec,
    cfg: Config,
    out: Output,
    *,
    watches: list[SocketWatch] | None = None,
) -> zmtp.Socket:
    """Create the socket, bind and connect it as the spec says, and report where.

    With ``watches``, a :class:`SocketWatch` for the socket is appended before it
    binds or connects, so that it sees every event.
    """
    options = cfg.options_for(spec.socket_type)
    options.update(cfg.security.socket_options(role, spec))
    try:
        sock = ctx.socket(spec.socket_type, **options)
    except (ValueError, TypeError) as exc:
        raise SocketSetupError(f"{role} {spec.socket_type.name}: {exc}", 2) from None
    if watches is not None:
        watches.append(SocketWatch(role, sock, advice=ABANDONED_ADVICE))
    if spec.socket_type is SocketType.SUB and role == "control":
        sock.subscribe(b"")  # type: ignore[attr-defined]
    for bind, endpoint in spec.endpoints:
        try:
            how = cfg.security.describe(role, bind, endpoint)
            if bind:
                resolved = await sock.bind(endpoint)
                out.line(f"{role} {spec.socket_type.name} bound to {resolved}{how}")
            else:
                await sock.connect(endpoint)
                out.line(f"{role} {spec.socket_type.name} connecting to {endpoint}{how}")
        except (OSError, ValueError) as exc:
            verb = "bind" if bind else "connect"
            raise SocketSetupError(
                f"cannot {verb} {role} {spec.socket_type.name} to {endpoint}: {exc}", 1
            ) from None
    return sock


@asynccontextmanager
async def zap_handler(ctx: zmtp.Context, security: Security) -> AsyncIterator[None]:
    """Serve ZAP for ``ctx`` while inside, if the bound sockets need it (a CURVE allow
    list, or PLAIN); started before any socket binds, so no client slips through."""
    if not security.needs_authenticator:
        yield
        return
    auth = Authenticator(ctx)
    security.configure(auth)
    async with auth:
        yield


def flushing_line(queued: int, linger: int) -> str | None:
    """What to say after the first signal while queued messages are flushed."""
    if queued <= 0 or linger == 0:
        return None
    how = "until they are delivered (--linger -1)" if linger < 0 else f"for up to {linger} ms"
    return f"{PROG}: flushing {queued} queued messages {how}; Ctrl-C again to drop them"


async def serve(cfg: Config, out: Output, stopper: Stopper) -> int:
    """Run the proxy the configuration describes until a signal or TERMINATE."""
    if cfg.defaults_used:
        out.line(
            f"no --frontend/--backend given: running a ROUTER<->DEALER queue "
            f"(clients connect to {cfg.frontend.endpoints[0][1]}, "
            f"workers to {cfg.backend.endpoints[0][1]})"
        )
    for line in cfg.security.summary():
        out.line(line)
    status = 0
    metrics: MetricsServer | None = None
    try:
        async with (
            zmtp.Context(tune_allocator=cfg.tune_allocator) as ctx,
            zap_handler(ctx, cfg.security),
        ):
            proxy: Proxy | None = None
            watches: list[SocketWatch] = []
            w = {"watches": watches}
            with stopper.scope:
                try:
                    frontend = await open_socket(ctx, "frontend", cfg.frontend, cfg, out, **w)
                    backend = await open_socket(ctx, "backend", cfg.backend, cfg, out, **w)
                    capture = control = None
                    if cfg.capture is not None:
                        capture = await open_socket(ctx, "capture", cfg.capture, cfg, out, **w)
                    if cfg.control is not None:
                        control = await open_socket(ctx, "control", cfg.control, cfg, out, **w)
                except SocketSetupError as exc:
                    error(str(exc))
                    await ctx.aclose(linger=0)
                    return exc.status
                proxy = Proxy(frontend, backend, capture=capture, control=control)
                if not proxy.directions:
                    out.line(
                        f"warning: a {cfg.frontend.socket_type.name} frontend and a "
                        f"{cfg.backend.socket_type.name} backend cannot carry messages"
                    )

                def health() -> list[SocketHealth]:
                    return [w.snapshot() for w in watches]

                if cfg.metrics is not None:
                    metrics = await _start_metrics(cfg.metrics, proxy, health, out)
                    if metrics is None:
                        await ctx.aclose(linger=0)
                        return 1
                out.line(f"{PROG}: running; Ctrl-C or SIGTERM stops it")
                async with trio.open_nursery() as nursery:
                    for watch in watches:
                        nursery.start_soon(watch.run)
                    if cfg.stats_interval > 0:
                        nursery.start_soon(print_statistics, proxy, cfg.stats_interval, out, health)
                    try:
                        await proxy.run()
                    except (trio.ClosedResourceError, zmtp.ZMTPError) as exc:
                        error(f"proxy stopped: {exc}")
                        status = 1
                    nursery.cancel_scope.cancel()
            why = f"signal {stopper.signal_name}" if stopper.signal_name else "TERMINATE"
            if proxy is not None:
                out.line(f"{PROG}: stopped by {why}")
                out.line(final_line(proxy.directions, proxy.statistics()))
                queued = sum(h.queued_out for h in health())
                flushing = flushing_line(queued, cfg.options["linger"])
                if flushing is not None:
                    out.line(flushing)
            # Leaving the Context closes the sockets, each flushing for up to --linger ms.
    finally:
        if metrics is not None:
            with trio.CancelScope(shield=True):
                await metrics.aclose()
    return status


async def _start_metrics(
    where: tuple[str, int],
    proxy: Proxy,
    health: Callable[[], list[SocketHealth]],
    out: Output,
) -> MetricsServer | None:
    from ._metrics import MetricsServer, collect_snapshot  # noqa: PLC0415 (optional)

    server = MetricsServer(*where, lambda: collect_snapshot(proxy, health))
    try:
        url = server.start()
    except OSError as exc:
        error(f"cannot serve metrics on {where[0]}:{where[1]}: {exc}")
        return None
    await trio.lowlevel.checkpoint()
    out.line(f"metrics on {url}")
    return server


async def _amain(cfg: Config, out: Output) -> int:
    stopper = Stopper()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stopper.watch, signals)
            if cfg.demo:
                status = await demo(cfg.stats_interval, out, stopper, curve=cfg.demo_curve)
            else:
                status = await serve(cfg, out, stopper)
            nursery.cancel_scope.cancel()
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m proxy`` and ``zmtp-proxy``; returns the exit status."""
    parser = _make_parser()
    args = parser.parse_args(argv)
    cfg = _config(parser, args, sys.stdout)
    handler = logging.StreamHandler(sys.stderr)
    if args.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    logging.basicConfig(level=args.log_level, handlers=[handler])
    out = Output(sys.stdout, quiet=cfg.quiet)
    if cfg.tune_allocator:
        tune_allocator()
    if cfg.tune_gc:
        tune_gc()
    return trio.run(_amain, cfg, out)


#: The proxy's threshold for collecting the youngest generation (Python's is 700).
GC_THRESHOLD = 20_000


def tune_gc() -> None:
    """Make the cycle collector cheap for a process that moves messages.

    Every message is a new list (tracked by the collector), so Python's default
    threshold starts a collection every 700 messages, and every tenth of those scans
    the older generations, in which live every module, class and function imported at
    start: about a fifth of the forwarder's CPU at 16 B (0.60 -> 0.45 µs per message,
    against 0.45 with the collector off).  Frozen (``gc.freeze``), the start-up's
    objects are never scanned again (refcounting still frees them); with a threshold of
    GC_THRESHOLD, cyclic garbage waits for at most that many allocations.  A program's
    choice, like ``tune_allocator``: the library leaves the collector alone.
    """
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, older, oldest)
