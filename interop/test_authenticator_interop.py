"""zmtp.auth.Authenticator decides as pyzmq's zmq.auth.Authenticator does.

Table-driven: each row configures both authenticators with the same calls (the method
names are pyzmq's, so one function configures either) and puts the same request frames
to each.  Ours is served through real sockets, a DEALER of its Context connected to
``inproc://zeromq.zap.01``; pyzmq's is the base class of ``zmq/auth/base.py`` with its
``zap_socket`` replaced by a recorder, and its coroutine ``handle_zap_message`` awaited
directly (it awaits nothing of asyncio's): no threads.  The replies' status, status
text and user id must agree.

The rows of ``DIVERGENCES`` are the documented differences (zmtp/auth/authenticator.py):
requests libzmq never sends, and a password comparison pyzmq makes on decoded text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

import zmtp
from zmtp.auth import CURVE_ALLOW_ANY, Authenticator
from zmtp.protocol import z85
from zmtp.protocol.keys import curve_keypair
from zmtp.protocol.zap import ZAP_ENDPOINT, parse_reply

zmq_auth_base = pytest.importorskip("zmq.auth.base")

pytestmark = pytest.mark.interop

KNOWN, _ = curve_keypair()
STRANGER, _ = curve_keypair()
PASSWORD = "hunter2"

Config = Callable[[Any, Path], None]
Outcome = tuple[bytes, bytes, bytes]  # status code, status text, user id


def request(
    mechanism: bytes,
    *credentials: bytes,
    address: bytes = b"127.0.0.1",
    domain: bytes = b"",
    version: bytes = b"1.0",
) -> list[bytes]:
    """Request frames after the delimiter, as libzmq lays them out."""
    return [version, b"1", domain, address, b"SRV", mechanism, *credentials]


def nothing(auth: Any, certs: Path) -> None:
    pass


def allow_10_0_0_1(auth: Any, certs: Path) -> None:
    auth.allow("10.0.0.1")


def deny_10_0_0_1(auth: Any, certs: Path) -> None:
    auth.deny("10.0.0.1")


def passwords(auth: Any, certs: Path) -> None:
    auth.configure_plain(domain="*", passwords={"admin": PASSWORD})


def passwords_in_global(auth: Any, certs: Path) -> None:
    auth.configure_plain("global", {"admin": PASSWORD})


def passwords_and_allow(auth: Any, certs: Path) -> None:
    passwords(auth, certs)
    allow_10_0_0_1(auth, certs)


def passwords_and_deny(auth: Any, certs: Path) -> None:
    passwords(auth, certs)
    deny_10_0_0_1(auth, certs)


def curve_any(auth: Any, certs: Path) -> None:
    auth.configure_curve(domain="*", location=CURVE_ALLOW_ANY)


def curve_any_elsewhere(auth: Any, certs: Path) -> None:
    auth.configure_curve(domain="other", location=CURVE_ALLOW_ANY)


def curve_directory(auth: Any, certs: Path) -> None:
    auth.configure_curve(domain="*", location=str(certs))


def curve_any_then_directory(auth: Any, certs: Path) -> None:
    curve_any(auth, certs)
    curve_directory(auth, certs)


class Provider:
    """A credentials provider knowing one key (pyzmq passes it in Z85)."""

    def callback(self, domain: str, key: bytes) -> bool:
        return domain == "*" and key == KNOWN


def curve_callback(auth: Any, certs: Path) -> None:
    auth.configure_curve_callback(domain="*", credentials_provider=Provider())


def curve_callback_elsewhere_and_directory(auth: Any, certs: Path) -> None:
    curve_directory(auth, certs)
    auth.configure_curve_callback(domain="other", credentials_provider=Provider())


@dataclass(frozen=True)
class Row:
    id: str
    config: Config
    frames: list[bytes]
    expected: Outcome


OK_ANON = (b"200", b"OK", b"anonymous")

ROWS = [
    Row("null", nothing, request(b"NULL"), OK_ANON),
    Row("null-domain", nothing, request(b"NULL", domain=b"global"), OK_ANON),
    Row("null-allowed", allow_10_0_0_1, request(b"NULL", address=b"10.0.0.1"), OK_ANON),
    Row(
        "null-not-allowed",
        allow_10_0_0_1,
        request(b"NULL", address=b"10.0.0.2"),
        (b"400", b"Address not allowed", b""),
    ),
    Row(
        "null-denied",
        deny_10_0_0_1,
        request(b"NULL", address=b"10.0.0.1"),
        (b"400", b"Address denied", b""),
    ),
    Row("null-not-denied", deny_10_0_0_1, request(b"NULL", address=b"10.0.0.2"), OK_ANON),
    Row(
        "plain-no-passwords",
        nothing,
        request(b"PLAIN", b"admin", b"x"),
        (b"400", b"No passwords defined", b""),
    ),
    Row(
        "plain-ok",
        passwords,
        request(b"PLAIN", b"admin", PASSWORD.encode()),
        (b"200", b"OK", b"admin"),
    ),
    Row(
        "plain-wrong-password",
        passwords,
        request(b"PLAIN", b"admin", b"x"),
        (b"400", b"Invalid password", b""),
    ),
    Row(
        "plain-unknown-user",
        passwords,
        request(b"PLAIN", b"eve", b"x"),
        (b"400", b"Invalid username", b""),
    ),
    Row(
        "plain-star-is-not-every-domain",
        passwords,
        request(b"PLAIN", b"admin", PASSWORD.encode(), domain=b"global"),
        (b"400", b"Invalid domain", b""),
    ),
    Row(
        "plain-named-domain",
        passwords_in_global,
        request(b"PLAIN", b"admin", PASSWORD.encode(), domain=b"global"),
        (b"200", b"OK", b"admin"),
    ),
    Row(
        "plain-named-domain-not-empty",
        passwords_in_global,
        request(b"PLAIN", b"admin", PASSWORD.encode()),
        (b"400", b"Invalid domain", b""),
    ),
    Row(
        "plain-allowed-address-wrong-password",
        passwords_and_allow,
        request(b"PLAIN", b"admin", b"x", address=b"10.0.0.1"),
        (b"400", b"Invalid password", b""),
    ),
    Row(
        "plain-denied-address",
        passwords_and_deny,
        request(b"PLAIN", b"admin", PASSWORD.encode(), address=b"10.0.0.1"),
        (b"400", b"Address denied", b""),
    ),
    Row(
        "curve-unconfigured",
        nothing,
        request(b"CURVE", z85.decode(KNOWN)),
        (b"400", b"Unknown domain", b""),
    ),
    Row("curve-any", curve_any, request(b"CURVE", z85.decode(STRANGER)), (b"200", b"OK", STRANGER)),
    Row(
        "curve-any-is-global",
        curve_any_elsewhere,
        request(b"CURVE", z85.decode(STRANGER)),
        (b"200", b"OK", STRANGER),
    ),
    Row(
        "curve-directory-known",
        curve_directory,
        request(b"CURVE", z85.decode(KNOWN)),
        (b"200", b"OK", KNOWN),
    ),
    Row(
        "curve-directory-unknown",
        curve_directory,
        request(b"CURVE", z85.decode(STRANGER)),
        (b"400", b"Unknown key", b""),
    ),
    Row(
        "curve-directory-other-domain",
        curve_directory,
        request(b"CURVE", z85.decode(KNOWN), domain=b"x"),
        (b"400", b"Unknown domain", b""),
    ),
    Row(
        "curve-directory-ends-allow-any",
        curve_any_then_directory,
        request(b"CURVE", z85.decode(STRANGER)),
        (b"400", b"Unknown key", b""),
    ),
    Row(
        "curve-callback-known",
        curve_callback,
        request(b"CURVE", z85.decode(KNOWN)),
        (b"200", b"OK", KNOWN),
    ),
    Row(
        "curve-callback-unknown",
        curve_callback,
        request(b"CURVE", z85.decode(STRANGER)),
        (b"400", b"Unknown key", b""),
    ),
    Row(
        "curve-callback-hides-certificates",
        curve_callback_elsewhere_and_directory,
        request(b"CURVE", z85.decode(KNOWN)),
        (b"400", b"Unknown domain", b""),
    ),
    Row(
        "curve-denied-address",
        deny_10_0_0_1,
        request(b"CURVE", z85.decode(KNOWN), address=b"10.0.0.1"),
        (b"400", b"Address denied", b""),
    ),
    Row("gssapi", nothing, request(b"GSSAPI", b"alice@REALM"), (b"200", b"OK", b"alice@REALM")),
    Row("unknown-mechanism", nothing, request(b"X-MINE"), (b"400", b"NO ACCESS", b"")),
    Row(
        "unknown-mechanism-allowed",
        allow_10_0_0_1,
        request(b"X-MINE", address=b"10.0.0.1"),
        OK_ANON,
    ),
    Row(
        "too-few-frames",
        nothing,
        [b"1.0", b"1", b"", b"127.0.0.1"],
        (b"400", b"Not enough frames", b""),
    ),
    Row(
        "bad-version", nothing, request(b"NULL", version=b"2.0"), (b"400", b"Invalid version", b"")
    ),
    Row(
        "plain-one-credential",
        passwords,
        request(b"PLAIN", b"admin"),
        (b"400", b"Invalid credentials", b""),
    ),
    Row(
        "curve-two-credentials",
        curve_any,
        request(b"CURVE", bytes(32), bytes(32)),
        (b"400", b"Invalid credentials", b""),
    ),
]


@dataclass(frozen=True)
class Divergence:
    id: str
    config: Config
    frames: list[bytes]
    ours: Outcome
    pyzmq: Outcome


DIVERGENCES = [
    # We refuse malformed requests before looking at the address lists; pyzmq after.
    Divergence(
        "malformed-from-denied-address",
        passwords_and_deny,
        request(b"PLAIN", b"admin", address=b"10.0.0.1"),
        (b"400", b"Invalid credentials", b""),
        (b"400", b"Address denied", b""),
    ),
    # NULL carries no credentials (RFC 27); pyzmq ignores any.
    Divergence(
        "null-with-credentials",
        nothing,
        request(b"NULL", b"x"),
        (b"400", b"Invalid credentials", b""),
        OK_ANON,
    ),
    # A CURVE key is 32 octets; pyzmq takes any length that Z85 can encode.
    Divergence(
        "curve-key-of-36-octets",
        curve_any,
        request(b"CURVE", bytes(36)),
        (b"400", b"Invalid credentials", b""),
        (b"200", b"OK", z85.encode(bytes(36))),
    ),
    # pyzmq decodes passwords with errors="replace": b"\xff" equals a configured "\ufffd".
    Divergence(
        "undecodable-password",
        lambda auth, certs: auth.configure_plain(passwords={"admin": "\ufffd"}),
        request(b"PLAIN", b"admin", b"\xff"),
        (b"400", b"Invalid password", b""),
        (b"200", b"OK", b"admin"),
    ),
]


class Recorder:
    """Stands in for pyzmq's ``zap_socket``: keeps what it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[list[bytes]] = []

    def send_multipart(self, frames: list[bytes]) -> None:
        self.sent.append(list(frames))


async def pyzmq_outcome(
    zmq_context: Any, config: Config, certs: Path, frames: list[bytes]
) -> Outcome:
    auth = zmq_auth_base.Authenticator(zmq_context)
    recorder = Recorder()
    auth.zap_socket = recorder
    config(auth, certs)
    await auth.handle_zap_message(list(frames))
    (sent,) = recorder.sent
    reply = parse_reply(sent)
    return reply.status_code, reply.status_text, reply.user_id


async def our_outcome(config: Config, certs: Path, frames: list[bytes]) -> Outcome:
    async with zmtp.Context() as ctx, Authenticator(ctx) as auth:
        config(auth, certs)
        dealer = ctx.socket(zmtp.DEALER, linger=0)
        await dealer.connect(ZAP_ENDPOINT)
        await dealer.send_multipart([b"", *frames])
        with trio.fail_after(10):
            delimiter, *reply_frames = await dealer.recv_multipart()
        assert delimiter == b""
        reply = parse_reply(reply_frames, request_id=frames[1])
        return reply.status_code, reply.status_text, reply.user_id


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    """A certificate directory holding KNOWN's public certificate."""
    (tmp_path / "known.key").write_text(f'curve\n    public-key = "{KNOWN.decode()}"\n')
    return tmp_path


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
async def test_same_decision_as_pyzmq(row: Row, zmq_context: Any, certs: Path) -> None:
    theirs = await pyzmq_outcome(zmq_context, row.config, certs, row.frames)
    ours = await our_outcome(row.config, certs, row.frames)
    assert ours == theirs == row.expected


@pytest.mark.parametrize("row", DIVERGENCES, ids=[d.id for d in DIVERGENCES])
async def test_documented_divergences(row: Divergence, zmq_context: Any, certs: Path) -> None:
    assert await pyzmq_outcome(zmq_context, row.config, certs, row.frames) == row.pyzmq
    assert await our_outcome(row.config, certs, row.frames) == row.ours
