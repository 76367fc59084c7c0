"""Fuzz targets: the sans-IO core fed whatever the fuzzer makes.

Each target takes raw bytes and checks two oracles:

* **only our errors escape**: a peer's bytes may end a connection with a
  :class:`~zmtp.ZMTPError` subclass, never with any other exception, and nothing a size
  field announces is allocated beyond ``PREALLOCATE_MAX``;
* **segmentation does not matter** (``connection``, ``framing``): the same bytes fed
  whole and split at points the input chooses give the same events and the same final
  error, in wire order (issue 14: the error must not depend on how TCP split them).

The input's first bytes choose the set-up (socket type, size limit, split points); the
rest is the stream.  Targets are plain functions so that the tests can call them on the
seed corpus without atheris.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

from nacl.public import PrivateKey

from zmtp import Connection, SocketType, ZMTPError
from zmtp.protocol.framing import FrameDecoder, OutputBuffer
from zmtp.protocol.greeting import GreetingParser
from zmtp.protocol.mechanisms import Mechanism, NullMechanism, PlainClient, PlainServer
from zmtp.protocol.mechanisms import curve as curve_module

__all__ = ["TARGETS", "connection", "framing", "greeting", "secure"]

_TYPES = list(SocketType)
_LIMITS = [-1, 0, 255, 256, 65536]


def _split(data: bytes, seed: bytes) -> list[bytes]:
    """``data`` cut at up to 8 points chosen by ``seed``."""
    if not data:
        return [data]
    points = sorted({b * len(data) // 256 for b in seed[:8]} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a] or [data]


def _describe(events: list[Any]) -> list[Any]:
    out: list[Any] = []
    for ev in events:
        if type(ev).__name__ == "Messages":
            out.extend(("message", tuple(bytes(f) for f in m)) for m in ev.messages)
        else:
            out.append(repr(ev))
    return out


def _run_connection(
    socket_type: SocketType, limit: int, chunks: list[bytes]
) -> tuple[list[Any], str, str]:
    conn = Connection(socket_type, max_message_size=limit, check_socket_type=False)
    conn.bytes_to_send()
    events: list[Any] = []
    try:
        for chunk in chunks:
            events += conn.receive_data(chunk)
            conn.bytes_to_send()
            if conn.error is not None or conn.phase.name == "CLOSED":
                break
        else:
            events += conn.receive_data(b"")
    except ZMTPError as exc:
        events += getattr(exc, "events", [])
    error = conn.error
    return _describe(events), type(error).__name__, str(error)


def connection(data: bytes) -> None:
    """A whole peer stream: greeting, handshake and traffic."""
    if len(data) < 10:
        return
    socket_type = _TYPES[data[0] % len(_TYPES)]
    limit = _LIMITS[data[1] % len(_LIMITS)]
    seed, stream = data[2:10], data[10:]
    whole = _run_connection(socket_type, limit, [stream])
    split = _run_connection(socket_type, limit, _split(stream, seed))
    if whole != split:
        raise AssertionError(f"segmentation changed the outcome:\n{whole}\n{split}")


def framing(data: bytes) -> None:
    """Traffic-phase frames: ``decode`` and ``decode_messages`` agree, whole or split,
    and what they decode encodes back to the same bytes."""
    if len(data) < 9:
        return
    limit = _LIMITS[data[0] % len(_LIMITS)]
    seed, stream = data[1:9], data[9:]

    def frames(chunks: list[bytes]) -> tuple[list[Any], str]:
        dec = FrameDecoder(limit)
        out: list[Any] = []
        try:
            for chunk in chunks:
                out += dec.decode(chunk)
        except ZMTPError as exc:
            out += getattr(exc, "frames_before", [])
            return out, type(exc).__name__
        return out, ""

    whole, error = frames([stream])
    if frames(_split(stream, seed)) != (whole, error):
        raise AssertionError("segmentation changed the frames")
    # Whole messages (ending on a frame without MORE) re-encode to their own bytes.
    buf = OutputBuffer()
    message: list[bytes] = []
    for flags, body in whole:
        if flags & 0x04:
            continue
        message.append(bytes(body))
        if not flags & 0x01:
            buf.write_message(message)
            message = []
    again: list[Any] = []
    dec = FrameDecoder(-1)
    for chunk in buf.chunks():
        again += dec.decode(bytes(chunk))
    data_frames = [(f & 0x01, bytes(b)) for f, b in whole if not f & 0x04]
    complete = len(data_frames) - len(message)
    if [(f & 0x01, bytes(b)) for f, b in again] != data_frames[:complete]:
        raise AssertionError("re-encoding changed the frames")


def greeting(data: bytes) -> None:
    """The 64-byte greeting, split anywhere: the same greeting or the same error."""
    if len(data) < 8:
        return
    seed, stream = data[:8], data[8:]

    def parse(chunks: list[bytes]) -> tuple[Any, str]:
        parser = GreetingParser()
        rest = b""
        try:
            for chunk in chunks:
                rest += parser.feed(chunk)
        except ZMTPError as exc:
            return None, type(exc).__name__
        return (parser.greeting, parser.major, rest), ""

    if parse([stream]) != parse(_split(stream, seed)):
        raise AssertionError("segmentation changed the greeting")


_SERVER_SECRET = bytes(range(1, 33))
_SERVER_PUBLIC = bytes(PrivateKey(_SERVER_SECRET).public_key)
_CLIENT_SECRET = bytes(range(33, 65))
_CLIENT_PUBLIC = bytes(PrivateKey(_CLIENT_SECRET).public_key)
#: What answers a ZAP request in the ``secure`` target (None: no handler bound).
_VERDICTS: list[bytes | None] = [b"200", b"300", b"400", b"500", None]


def _mechanism(choice: int) -> Mechanism:
    kind = choice % 6
    if kind == 0:
        return PlainServer()
    if kind == 1:
        return PlainClient(b"user", b"password")
    if kind == 2:
        return curve_module.CurveServer(_SERVER_SECRET, zap=True)
    if kind == 3:
        return curve_module.CurveClient(_SERVER_PUBLIC, _CLIENT_PUBLIC, _CLIENT_SECRET)
    if kind == 4:
        return NullMechanism(zap=True)
    return curve_module.CurveServer(_SERVER_SECRET)


def _run_secure(choice: int, verdict: bytes | None, chunks: list[bytes]) -> tuple[Any, ...]:
    conn = Connection(SocketType.DEALER, mechanism=_mechanism(choice), check_socket_type=False)
    conn.bytes_to_send()
    events: list[Any] = []
    try:
        for chunk in [*chunks, b""]:
            new = conn.receive_data(chunk)
            events += new
            while conn.awaiting_authentication:
                new = conn.zap_unavailable() if verdict is None else conn.zap_reply(verdict)
                events += new
            conn.bytes_to_send()
            if conn.phase.name == "CLOSED":
                break
    except ZMTPError as exc:
        events += getattr(exc, "events", [])
    error = conn.error
    return _describe(events), type(error).__name__, str(error)


def secure(data: bytes) -> None:
    """A peer's stream to a PLAIN, CURVE or NULL-with-ZAP connection (either role),
    with a ZAP verdict chosen by the input: only our errors escape, and the outcome
    does not depend on segmentation.  The CURVE randomness is pinned so that the whole
    and the split run see the same keys."""
    if len(data) < 10:
        return
    choice, verdict = data[0], _VERDICTS[data[1] % len(_VERDICTS)]
    seed, stream = data[2:10], data[10:]
    with _pinned_curve():
        whole = _run_secure(choice, verdict, [stream])
    with _pinned_curve():
        split = _run_secure(choice, verdict, _split(stream, seed))
    if whole != split:
        raise AssertionError(f"segmentation changed the outcome:\n{whole}\n{split}")


def _zeros(size: int) -> bytes:
    return bytes(size)


@contextlib.contextmanager
def _pinned_curve() -> Iterator[None]:
    seeds = itertools.count(1)
    saved = curve_module._new_transient, curve_module._random
    curve_module._new_transient = lambda: PrivateKey(bytes([next(seeds) % 256]) * 32)
    curve_module._random = _zeros
    try:
        yield
    finally:
        curve_module._new_transient, curve_module._random = saved


TARGETS: dict[str, Callable[[bytes], None]] = {
    "connection": connection,
    "framing": framing,
    "greeting": greeting,
    "secure": secure,
}
