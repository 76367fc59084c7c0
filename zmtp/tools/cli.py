"""Command line: ``python -m zmtp <command> ...``.

Commands are registered in :data:`SUBCOMMANDS` (name -> (add arguments, run)), so more
can be added without touching the dispatcher.  Errors in the arguments print one line
and exit with status 2, as argparse does, but without the usage block.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from .format import HumanFormatter, JsonFormatter, use_color
from .trace import TraceEvent

if TYPE_CHECKING:
    from .pcap import PcapWriter

__all__ = ["SUBCOMMANDS", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Output:
    """Renders trace events to a text stream, one flushed line at a time.

    If the stream goes away (``| head``), output stops but the caller carries on: a tap
    keeps relaying.
    """

    def __init__(self, args: argparse.Namespace, stream: TextIO) -> None:
        self.stream: TextIO | None = stream
        self.formatter: HumanFormatter | JsonFormatter
        if args.json:
            self.formatter = JsonFormatter(preview=args.preview)
        else:
            self.formatter = HumanFormatter(
                color=use_color(stream, args.color), preview=args.preview
            )

    def __call__(self, event: TraceEvent) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write("".join(line + "\n" for line in self.formatter.format(event)))
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            self.stream = None


def _preview(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON object per event")
    p.add_argument(
        "--preview",
        type=_preview,
        default=32,
        metavar="N",
        help="bytes of each frame body to show (default 32)",
    )
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour human output (default: when stdout is a terminal and NO_COLOR is unset)",
    )
    p.add_argument(
        "--show-passwords",
        action="store_true",
        help="show PLAIN passwords (by default only their sizes: <N octets hidden>)",
    )


# -- tap ---------------------------------------------------------------------------------


def _add_tap(p: argparse.ArgumentParser) -> None:
    """Relay connections unchanged and print the ZMTP conversations through them."""
    p.description = (
        "Relay connections from LISTEN to UPSTREAM unchanged, printing every ZMTP "
        "greeting, command and message that passes."
    )
    p.add_argument("listen", metavar="LISTEN", help="tcp://HOST:PORT or ipc://PATH to accept on")
    p.add_argument("upstream", metavar="UPSTREAM", help="tcp://HOST:PORT or ipc://PATH to relay to")
    p.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="also save each direction's raw bytes (conn-N-c2s.bin, conn-N-s2c.bin, "
        "conn-N-timeline.jsonl) for python -m zmtp decode",
    )
    p.add_argument(
        "--pcap",
        type=Path,
        metavar="FILE",
        help="also write what passes as a pcap capture (Wireshark opens it; needs dpkt)",
    )
    _add_output_args(p)


def _run_tap(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import trio  # noqa: PLC0415

    from .tap import Tap, parse_endpoint  # noqa: PLC0415

    try:
        listen = parse_endpoint(args.listen, listen=True)
        upstream = parse_endpoint(args.upstream)
    except ValueError as exc:
        parser.error(str(exc))
    output = _Output(args, sys.stdout)
    pcap = _pcap_writer(args.pcap, parser) if args.pcap is not None else None
    tap = Tap(
        listen,
        upstream,
        output,
        preview=args.preview,
        record_dir=args.record,
        wire=pcap,
        show_passwords=args.show_passwords,
    )

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(tap.serve)
            print(f"tap: listening on {', '.join(bound)}, relaying to {upstream}", file=sys.stderr)
            sys.stderr.flush()
            # Ctrl-C or SIGTERM: stop accepting, close every connection, exit 0.
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            nursery.cancel_scope.cancel()

    try:
        trio.run(run)
    except (OSError, BaseExceptionGroup) as exc:
        # trio's nurseries wrap errors in groups; a lone OSError (cannot listen) is a
        # user-facing failure, anything else a bug that keeps its traceback.
        error = _only_oserror(exc)
        if error is None:
            raise
        print(f"tap: error: {error}", file=sys.stderr)
        return 1
    finally:
        if pcap is not None:
            pcap.close()  # FINs for the connections still open: a complete capture
    if pcap is not None:
        print(f"tap: wrote {pcap.packets} packets to {args.pcap}", file=sys.stderr)
    print(
        f"tap: stopped ({tap.relayed['c2s']} B client->server, "
        f"{tap.relayed['s2c']} B server->client)",
        file=sys.stderr,
    )
    return 0


def _only_oserror(exc: BaseException) -> OSError | None:
    """The OSError that ``exc`` is, or that a group of nested groups holds alone."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, OSError) else None


# -- decode ------------------------------------------------------------------------------


def _add_decode(p: argparse.ArgumentParser) -> None:
    """Decode recorded traffic: tap recordings, hex dumps, pcap/pcapng captures."""
    p.description = (
        "Decode recorded ZMTP traffic: raw byte files from tap --record, hex dumps "
        "(plain, xxd, hexdump -C) and pcap/pcapng captures (needs dpkt)."
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files or directories")
    p.add_argument(
        "--format",
        choices=("auto", "raw", "hex", "pcap"),
        default="auto",
        help="input format (default: detected per file)",
    )
    p.add_argument("--port", type=int, help="pcap: only connections with this TCP port")
    p.add_argument(
        "--pcap-out",
        type=Path,
        metavar="FILE",
        help="also write the decoded connections as a pcap capture (Wireshark opens it; "
        "needs dpkt)",
    )
    p.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="also write a ladder diagram of each conversation as a self-contained HTML page",
    )
    _add_output_args(p)
    p.epilog = (
        "Exit status: 0 when ZMTP was decoded and every direction decoded to its end; "
        "1 when the input held no ZMTP conversation or decoding stopped somewhere (a "
        "line on stderr says what was found); 2 for bad arguments or unreadable input."
    )


def _run_decode(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .decode import DecodeInputError, DecodeSummary, decode_paths  # noqa: PLC0415

    output = _Output(args, sys.stdout)
    summary = DecodeSummary()
    try:
        with contextlib.ExitStack() as stack:
            wire = None
            if args.pcap_out is not None:
                wire = stack.enter_context(_pcap_writer(args.pcap_out, parser))
            ladder = None
            if args.html is not None:
                from .html import HtmlLadder  # noqa: PLC0415

                title = " ".join(str(f) for f in args.files)
                ladder = HtmlLadder(title=title, preview=args.preview)
            for event in decode_paths(
                args.files,
                preview=args.preview,
                fmt=args.format,
                port=args.port,
                summary=summary,
                wire=wire,
                show_passwords=args.show_passwords,
            ):
                output(event)
                if ladder is not None:
                    ladder.add(event)
            if ladder is not None:
                args.html.write_text(ladder.render(), encoding="utf-8")
    except DecodeInputError as exc:
        parser.error(str(exc))
    except OSError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    if not summary.ok:
        print(f"{parser.prog}: {summary.verdict()}", file=sys.stderr)
        return 1
    return 0


def _pcap_writer(path: Path, parser: argparse.ArgumentParser) -> PcapWriter:
    """A pcap writer for ``--pcap``/``--pcap-out``; a missing dpkt is a usage error."""
    from .pcap import PcapWriter  # noqa: PLC0415 - imports dpkt

    try:
        return PcapWriter(path)
    except ImportError:
        parser.error("writing a pcap file needs dpkt: pip install 'zmtp[pcap]'")
    except OSError as exc:
        parser.error(f"cannot write {path}: {exc.strerror or exc}")


#: name -> (add the subcommand's arguments, run it and return the exit status).
SUBCOMMANDS: dict[
    str,
    tuple[
        Callable[[argparse.ArgumentParser], None],
        Callable[[argparse.Namespace, argparse.ArgumentParser], int],
    ],
] = {
    "tap": (_add_tap, _run_tap),
    "decode": (_add_decode, _run_decode),
}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _Parser(prog="python -m zmtp", description="zmtp command line tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parsers = {}
    for name, (add, _) in SUBCOMMANDS.items():
        first_line = (add.__doc__ or "").strip()
        parsers[name] = sub.add_parser(name, help=first_line or None)
        add(parsers[name])
    args = parser.parse_args(argv)
    _, run = SUBCOMMANDS[args.command]
    return run(args, parsers[args.command])
