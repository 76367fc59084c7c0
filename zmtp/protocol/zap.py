"""ZAP, the ZeroMQ Authentication Protocol (RFC 27): its messages, sans-IO.

A *server* (a socket doing a PLAIN or CURVE handshake, or NULL with a ZAP domain) asks
a *handler* bound at ``inproc://zeromq.zap.01`` whether to let a peer in.  Both
messages are multipart; on the wire each starts with an empty delimiter frame, and
everything here deals in the frames *after* it (the socket layer adds or strips the
delimiter, and a ROUTER's routing ids before it)::

    request: version "1.0", request id, domain, address, identity, mechanism, credentials...
    reply:   version "1.0", request id, status code, status text, user id, metadata

What libzmq 4.3.5 puts in a request (specs/libzmq-behaviour.md §4.3, src/zap_client.cpp):
request id ``"1"`` always, the domain ``""`` when none is set (RFC 27 wants it
non-empty), the peer's IP address as text, and as *identity* the server socket's own
routing id, not the connecting peer's.  libzmq checks a reply strictly, and each
failure has its own monitor code (``ZMQ_PROTOCOL_ERROR_ZAP_*``): :func:`parse_reply`
makes the same checks, in the same order, and names the code on the :class:`ZapError`.

The PLAIN password travels in a request's credentials; :class:`ZapRequest` keeps it out
of its ``repr``, and no error raised here quotes a credential.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from .errors import HandshakeError, RemoteProtocolError
from .metadata import Metadata, parse_properties

__all__ = [
    "ZAP_ENDPOINT",
    "ZAP_ERROR_CODES",
    "ZAP_VERSION",
    "ZapError",
    "ZapReply",
    "ZapRequest",
    "encode_reply",
    "encode_request",
    "parse_reply",
    "parse_reply_metadata",
    "parse_request",
]

#: Where the handler binds and every server connects (RFC 27 "Architecture").
ZAP_ENDPOINT: Final = "inproc://zeromq.zap.01"
#: The only version there is, the first frame after the delimiter of every message.
ZAP_VERSION: Final = b"1.0"

#: libzmq's monitor codes for a bad ZAP reply (``ZMQ_PROTOCOL_ERROR_ZAP_*`` in zmq.h,
#: reported with ``EVENT_HANDSHAKE_FAILED_PROTOCOL``), by the name :attr:`ZapError.code`
#: carries.
ZAP_ERROR_CODES: Final[Mapping[str, int]] = {
    "ZAP_UNSPECIFIED": 0x20000000,
    "ZAP_MALFORMED_REPLY": 0x20000001,
    "ZAP_BAD_REQUEST_ID": 0x20000002,
    "ZAP_BAD_VERSION": 0x20000003,
    "ZAP_INVALID_STATUS_CODE": 0x20000004,
    "ZAP_INVALID_METADATA": 0x20000005,
}

#: Credentials frames RFC 27 prescribes per mechanism; other mechanisms take any number.
_CREDENTIAL_COUNTS: Final[Mapping[bytes, int]] = {b"NULL": 0, b"PLAIN": 2, b"CURVE": 1}
_CURVE_KEY_SIZE: Final = 32
_REQUEST_HEAD: Final = 6  # version, request id, domain, address, identity, mechanism
_REPLY_FRAMES: Final = 6  # version, request id, status code, status text, user id, metadata


class ZapError(RemoteProtocolError):
    """A ZAP message that breaks RFC 27 (or libzmq's stricter reading of it).

    Attributes:
        code: the name of libzmq's monitor protocol-error constant for the fault, without
            its ``ZMQ_PROTOCOL_ERROR_`` prefix: ``"ZAP_MALFORMED_REPLY"``,
            ``"ZAP_BAD_VERSION"``, ``"ZAP_BAD_REQUEST_ID"``,
            ``"ZAP_INVALID_STATUS_CODE"``, ``"ZAP_INVALID_METADATA"`` or
            ``"ZAP_UNSPECIFIED"``; :data:`ZAP_ERROR_CODES` gives its number.  libzmq has
            codes for replies only: a bad request's version is ``ZAP_BAD_VERSION`` and
            its other faults ``ZAP_UNSPECIFIED``.
    """

    def __init__(self, message: str, *, code: str, reason: bytes | None = None) -> None:
        if code not in ZAP_ERROR_CODES:
            raise ValueError(f"unknown ZAP error code {code!r}")
        super().__init__(message, reason=reason)
        self.code = code


def _frame(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"ZAP {what} must be bytes, not {type(value).__name__}")
    return bytes(value)


@dataclass(frozen=True, slots=True, repr=False)
class ZapRequest:
    """One authentication request (RFC 27 "Message Format").

    Attributes:
        domain: the server's ZAP domain (libzmq sends ``b""`` when none is set).
        address: the client's IP address as text, ``b"127.0.0.1"``.
        identity: libzmq sends the *server* socket's routing id here (RFC 27 says the
            connection's Identity).
        mechanism: ``b"NULL"``, ``b"PLAIN"``, ``b"CURVE"`` or another name.
        credentials: none for NULL; username and password for PLAIN; the client's
            32-octet long-term public key for CURVE.
        request_id: opaque, echoed by the reply (libzmq: ``b"1"``).
        version: ``b"1.0"``.

    The frames may be given as any bytes-like objects; they are kept as ``bytes``
    (``credentials`` as a tuple).  The ``repr`` hides a PLAIN password.
    """

    domain: bytes
    address: bytes
    identity: bytes
    mechanism: bytes
    credentials: tuple[bytes, ...]
    request_id: bytes = b"1"
    version: bytes = ZAP_VERSION

    def __post_init__(self) -> None:
        # Normalise to bytes so that a request built from bytearrays or a list of
        # credentials compares equal to the same request parsed off the wire.
        for name in ("domain", "address", "identity", "mechanism", "request_id", "version"):
            object.__setattr__(self, name, _frame(getattr(self, name), name.replace("_", " ")))
        creds = self.credentials
        if isinstance(creds, bytes | bytearray | memoryview | str):
            # A lone key passed where a sequence belongs would become 32 one-octet frames.
            raise TypeError("ZAP credentials must be a sequence of frames, not one frame")
        object.__setattr__(self, "credentials", tuple(_frame(c, "credentials") for c in creds))

    def __repr__(self) -> str:
        shown: list[str] = [repr(c) for c in self.credentials]
        if self.mechanism == b"PLAIN" and len(shown) >= 2:
            shown[1] = "<password hidden>"
        creds = "(" + ", ".join(shown) + ("," if len(shown) == 1 else "") + ")"
        return (
            f"ZapRequest(domain={self.domain!r}, address={self.address!r}, "
            f"identity={self.identity!r}, mechanism={self.mechanism!r}, credentials={creds}, "
            f"request_id={self.request_id!r}, version={self.version!r})"
        )


@dataclass(frozen=True, slots=True)
class ZapReply:
    """One authentication reply (RFC 27 "Message Format").

    Attributes:
        request_id: the request's, unchanged.
        status_code: ``b"200"`` (accepted), ``b"300"`` (temporary failure: libzmq closes
            the connection without ERROR), ``b"400"`` (refused) or ``b"500"``
            (handler failure); libzmq sends ERROR with the code for the last two.
        status_text: why, for people; may be empty.
        user_id: who the peer is, on 200 (RFC 27: empty otherwise); libzmq exposes it
            as the ``User-Id`` property of the peer's messages.
        metadata: RFC 23 properties (``zmtp.protocol.metadata.encode_properties``),
            added to the peer's message properties on 200.
        version: ``b"1.0"``.
    """

    request_id: bytes
    status_code: bytes
    status_text: bytes = b""
    user_id: bytes = b""
    metadata: bytes = b""
    version: bytes = ZAP_VERSION

    def __post_init__(self) -> None:
        for name in ("request_id", "status_code", "status_text", "user_id", "metadata", "version"):
            object.__setattr__(self, name, _frame(getattr(self, name), name.replace("_", " ")))

    @property
    def ok(self) -> bool:
        """True for status 200: let the peer in."""
        return self.status_code == b"200"


def encode_request(req: ZapRequest) -> list[bytes]:
    """The frames of ``req`` after the empty delimiter.

    No checks: whatever ``req`` holds is sent, so a test can build any request.
    """
    return [
        req.version,
        req.request_id,
        req.domain,
        req.address,
        req.identity,
        req.mechanism,
        *req.credentials,
    ]


def parse_request(frames: Sequence[bytes]) -> ZapRequest:
    """Read a request from the frames after its delimiter.

    Raises:
        ZapError: fewer than 6 frames; a version other than ``1.0``
            (``ZAP_BAD_VERSION``); for NULL, PLAIN or CURVE, not 0, 2 or 1 credentials
            frames, or a CURVE key that is not 32 octets.  Other mechanisms may carry any
            number of credentials: they mean nothing to ZAP itself.
    """
    items = [bytes(f) for f in frames]
    if len(items) < _REQUEST_HEAD:
        raise ZapError(
            f"ZAP request of {len(items)} frames: at least {_REQUEST_HEAD} needed",
            code="ZAP_UNSPECIFIED",
            reason=b"Not enough frames",
        )
    version, request_id, domain, address, identity, mechanism = items[:_REQUEST_HEAD]
    credentials = tuple(items[_REQUEST_HEAD:])
    if version != ZAP_VERSION:
        raise ZapError(
            f"ZAP request version {version[:16]!r}, not {ZAP_VERSION!r}",
            code="ZAP_BAD_VERSION",
            reason=b"Invalid version",
        )
    expected = _CREDENTIAL_COUNTS.get(mechanism)
    if expected is not None and len(credentials) != expected:
        # Counts only: a PLAIN request's frames include the password.
        raise ZapError(
            f"ZAP {mechanism.decode()} request with {len(credentials)} credentials frames, "
            f"{expected} expected",
            code="ZAP_UNSPECIFIED",
            reason=b"Invalid credentials",
        )
    if mechanism == b"CURVE" and len(credentials[0]) != _CURVE_KEY_SIZE:
        raise ZapError(
            f"ZAP CURVE request with a key of {len(credentials[0])} octets, "
            f"{_CURVE_KEY_SIZE} expected",
            code="ZAP_UNSPECIFIED",
            reason=b"Invalid credentials",
        )
    return ZapRequest(
        domain=domain,
        address=address,
        identity=identity,
        mechanism=mechanism,
        credentials=credentials,
        request_id=request_id,
        version=version,
    )


def encode_reply(reply: ZapReply) -> list[bytes]:
    """The frames of ``reply`` after the empty delimiter.

    No checks, as for :func:`encode_request`: a test may send libzmq a bad reply.
    """
    return [
        reply.version,
        reply.request_id,
        reply.status_code,
        reply.status_text,
        reply.user_id,
        reply.metadata,
    ]


def _valid_status(code: bytes) -> bool:
    # libzmq accepts exactly "200", "300", "400" and "500".
    return len(code) == 3 and code[0] in b"2345" and code[1:] == b"00"


def parse_reply(frames: Sequence[bytes], *, request_id: bytes | None = None) -> ZapReply:
    """Read a reply from the frames after its delimiter, as strictly as libzmq 4.3.5.

    Args:
        frames: the reply without its delimiter.
        request_id: if given, the reply must echo it (libzmq always expects ``b"1"``).

    Raises:
        ZapError: with :attr:`ZapError.code`, in libzmq's order of checks:
            not exactly 6 frames (``ZAP_MALFORMED_REPLY``), a version other than
            ``1.0`` (``ZAP_BAD_VERSION``), another request id (``ZAP_BAD_REQUEST_ID``),
            a status other than 200, 300, 400 or 500 (``ZAP_INVALID_STATUS_CODE``),
            metadata that does not parse as properties (``ZAP_INVALID_METADATA``).
    """
    items = [bytes(f) for f in frames]
    if len(items) != _REPLY_FRAMES:
        raise ZapError(
            f"ZAP reply of {len(items)} frames after the delimiter, {_REPLY_FRAMES} expected",
            code="ZAP_MALFORMED_REPLY",
            reason=b"Malformed ZAP reply",
        )
    version, rid, status_code, status_text, user_id, metadata = items
    if version != ZAP_VERSION:
        raise ZapError(
            f"ZAP reply version {version[:16]!r}, not {ZAP_VERSION!r}",
            code="ZAP_BAD_VERSION",
            reason=b"Bad ZAP version",
        )
    if request_id is not None and rid != request_id:
        raise ZapError(
            f"ZAP reply to request {rid[:16]!r}, we asked {request_id[:16]!r}",
            code="ZAP_BAD_REQUEST_ID",
            reason=b"Bad ZAP request id",
        )
    if not _valid_status(status_code):
        raise ZapError(
            f"ZAP status code {status_code[:16]!r}: 200, 300, 400 or 500 expected",
            code="ZAP_INVALID_STATUS_CODE",
            reason=b"Invalid ZAP status code",
        )
    reply = ZapReply(
        request_id=rid,
        status_code=status_code,
        status_text=status_text,
        user_id=user_id,
        metadata=metadata,
        version=version,
    )
    parse_reply_metadata(reply)
    return reply


def parse_reply_metadata(reply: ZapReply) -> Metadata:
    """The properties in ``reply.metadata``.

    Our property reader is stricter than libzmq's, which takes an empty name, any name
    octets, and a list cut off exactly after a name or a value size.

    Raises:
        ZapError: ``ZAP_INVALID_METADATA``, the properties do not parse.
    """
    try:
        return parse_properties(reply.metadata)
    except HandshakeError as exc:
        raise ZapError(
            f"ZAP reply metadata: {exc}",
            code="ZAP_INVALID_METADATA",
            reason=b"Invalid ZAP metadata",
        ) from None
