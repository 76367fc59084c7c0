"""The PLAIN mechanism (RFC 24): a username and password, in clear, checked by the server.

Handshake (specs/libzmq-behaviour.md §4.1)::

    C: HELLO     username-size(1) username password-size(1) password
    S: WELCOME   (nothing; libzmq refuses any extra octet)   or ERROR
    C: INITIATE  properties
    S: READY     properties                                  or ERROR

Traffic afterwards is framed exactly as under NULL: the connection's clear-text fast
path serves it, and PLAIN has no traffic codec.

The password is a secret even though it travels in clear: no ``repr``, ``str``, log
line or exception message of this module contains it.  (The connection hands the HELLO
to :meth:`PlainServer.receive_command` as a :class:`~zmtp.protocol.commands.Command`,
whose own repr would show it: whoever logs commands must not log that one.)

libzmq's PLAIN server sends its ERROR as ``04 09 5E 'RROR' 03 '400'`` (a C escape bug,
D-9): the name length reads as 94, so the frame does not even parse as a command, and
libzmq's PLAIN client recognises only that form.  :func:`parse_libzmq_error` reads it;
:meth:`PlainClient.refusal_in` gives it to the connection, which finds the frame
unparsable; :class:`PlainClient` takes any other unexpected command as a refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..commands import ERROR, READY, Command, encode_command, parse_error
from ..errors import (
    AuthenticationFailed,
    AuthenticationUnavailable,
    HandshakeError,
    LocalProtocolError,
    PeerError,
)
from ..metadata import DEFAULT_MAX_METADATA_SIZE, Metadata, encode_properties, parse_properties
from .base import Mechanism, MechanismStatus

__all__ = ["PlainClient", "PlainCredentials", "PlainServer", "parse_libzmq_error"]

HELLO = b"HELLO"
WELCOME = b"WELCOME"
INITIATE = b"INITIATE"

#: What libzmq 4.3.5's PLAIN server puts where ``05 'ERROR'`` belongs (D-9).
_LIBZMQ_ERROR_HEAD = b"\x5eRROR"


@dataclass(frozen=True, slots=True)
class PlainCredentials:
    """A PLAIN HELLO's contents.  The password is left out of ``repr``."""

    username: bytes
    password: bytes = field(repr=False)


#: ``authorize(credentials) -> bool``.
PlainAuthorizer = Callable[[PlainCredentials], bool]


def _credential(value: bytes | str, what: str) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    elif not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"the PLAIN {what} must be bytes or str, not {type(value).__name__}")
    raw = bytes(value)
    if len(raw) > 255:
        raise ValueError(f"the PLAIN {what} is at most 255 octets, got {len(raw)}")
    return raw


def encode_hello(credentials: PlainCredentials) -> bytes:
    """The HELLO command frame for ``credentials``.

    Raises:
        LocalProtocolError: a username or password over 255 octets.
    """
    if len(credentials.username) > 255 or len(credentials.password) > 255:
        raise LocalProtocolError("PLAIN username and password are at most 255 octets each")
    data = (
        bytes((len(credentials.username),))
        + credentials.username
        + bytes((len(credentials.password),))
        + credentials.password
    )
    return encode_command(HELLO, data)


def parse_hello(data: bytes) -> PlainCredentials:
    """The credentials in a HELLO's data (after the name).

    Raises:
        HandshakeError: truncated, or with octets after the password (libzmq refuses
            those too).
    """
    if not data:
        raise HandshakeError("malformed PLAIN HELLO: empty", reason=b"Malformed HELLO")
    user_len = data[0]
    if 1 + user_len >= len(data):
        raise HandshakeError(
            "malformed PLAIN HELLO: the username overruns the command",
            reason=b"Malformed HELLO",
        )
    pass_len = data[1 + user_len]
    if 2 + user_len + pass_len != len(data):
        raise HandshakeError(
            f"malformed PLAIN HELLO: {len(data)} octets do not match the announced "
            "username and password sizes",
            reason=b"Malformed HELLO",
        )
    return PlainCredentials(
        bytes(data[1 : 1 + user_len]), bytes(data[2 + user_len : 2 + user_len + pass_len])
    )


def parse_libzmq_error(body: bytes) -> bytes | None:
    """The reason in libzmq's malformed PLAIN ERROR frame body (``5E 'RROR' reason``), or
    None if ``body`` is not one."""
    raw = bytes(body)
    if not raw.startswith(_LIBZMQ_ERROR_HEAD):
        return None
    return parse_error(raw[len(_LIBZMQ_ERROR_HEAD) :])


class PlainClient(Mechanism):
    """The client side of a PLAIN handshake.

    Args:
        username, password: at most 255 octets each (``str`` is sent as UTF-8).
        max_metadata_size: cap on the server's READY properties.

    Raises:
        TypeError, ValueError: a credential of the wrong type or over 255 octets.
    """

    name = b"PLAIN"
    as_server = False
    sends_errors = False  # RFC 24: only the server sends ERROR

    def __init__(
        self,
        username: bytes | str,
        password: bytes | str,
        *,
        max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE,
    ) -> None:
        super().__init__()
        self._credentials = PlainCredentials(
            _credential(username, "username"), _credential(password, "password")
        )
        self.max_metadata_size = max_metadata_size
        self._properties: list[tuple[str, bytes]] = []
        self._stage = "start"

    @property
    def username(self) -> bytes:
        """The username we present."""
        return self._credentials.username

    def __repr__(self) -> str:
        return f"<PlainClient username={self.username!r} {self.status.value}>"

    def refusal_in(self, body: bytes) -> PeerError | None:
        """libzmq's PLAIN server's ERROR (``5E 'RROR'``, specs/libzmq-behaviour.md
        §4.1) as the refusal it is; None for any other unparsable frame."""
        if self._stage not in ("welcome", "ready"):
            return None
        reason = parse_libzmq_error(body)
        if reason is None:
            return None
        self._stage = "failed"
        return PeerError(reason)

    def start(self, properties: list[tuple[str, bytes]]) -> list[bytes]:
        """Send HELLO."""
        if self._stage != "start":
            raise LocalProtocolError("PLAIN client started twice")
        self._properties = list(properties)
        encode_properties(self._properties)  # fail now, not after the server's WELCOME
        self._stage = "welcome"
        return [encode_hello(self._credentials)]

    def receive_command(self, command: Command) -> list[bytes]:
        """WELCOME (answered with INITIATE), then READY.

        Raises:
            PeerError: the server sent ERROR.
            AuthenticationFailed: any other unexpected command, taken as a refusal
                (libzmq's own ERROR is malformed, see the module notes).
            HandshakeError: a WELCOME with data, a malformed READY, or a command after
                the handshake.
        """
        if self._stage not in ("welcome", "ready"):
            raise HandshakeError(
                f"unexpected {command.name!r} after the PLAIN handshake",
                reason=b"Unexpected command",
            )
        if command.name == ERROR:
            self._stage = "failed"
            raise PeerError(parse_error(command.data))
        if self._stage == "welcome" and command.name == WELCOME:
            if command.data:
                raise HandshakeError(
                    f"malformed PLAIN WELCOME: {len(command.data)} octets after the name",
                    reason=b"Malformed WELCOME",
                )
            self._stage = "ready"
            return [encode_command(INITIATE, encode_properties(self._properties))]
        if self._stage == "ready" and command.name == READY:
            self.peer_metadata = parse_properties(command.data, max_size=self.max_metadata_size)
            self._stage = "done"
            self.status = MechanismStatus.READY
            return []
        self._stage = "failed"
        raise AuthenticationFailed(
            f"the PLAIN server answered with {command.name!r}: taken as a refusal",
            reason=b"Unexpected command",
        )


class PlainServer(Mechanism):
    """The server side of a PLAIN handshake.

    Args:
        authorize: called with the client's :class:`PlainCredentials`; True accepts,
            False refuses (:class:`AuthenticationFailed`, reason ``b"400"``, which the
            connection sends as ERROR).  Without it the server asks ZAP (RFC 27): after
            HELLO it waits (``WAITING_FOR_ZAP``, credentials username and password) and
            sends WELCOME only on a 200.  There is no "accept anyone" default: a libzmq
            PLAIN server without a ZAP handler refuses every client
            (specs/libzmq-behaviour.md §4.1), and so does :meth:`zap_unavailable`.
        max_metadata_size: cap on the client's INITIATE properties.

    After HELLO is accepted, :attr:`username` holds the client's username (and
    :attr:`user_id` the same, until ZAP assigns one).
    """

    name = b"PLAIN"
    as_server = True

    def __init__(
        self,
        *,
        authorize: PlainAuthorizer | None = None,
        max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE,
    ) -> None:
        super().__init__()
        self.authorize = authorize
        self.max_metadata_size = max_metadata_size
        #: The accepted client's username.
        self.username: bytes | None = None
        self._properties: list[tuple[str, bytes]] = []
        self._stage = "start"

    def __repr__(self) -> str:
        return f"<PlainServer username={self.username!r} {self.status.value}>"

    def start(self, properties: list[tuple[str, bytes]]) -> list[bytes]:
        """Nothing to send: the client speaks first."""
        if self._stage != "start":
            raise LocalProtocolError("PLAIN server started twice")
        self._properties = list(properties)
        encode_properties(self._properties)
        self._stage = "hello"
        return []

    def receive_command(self, command: Command) -> list[bytes]:
        """HELLO (answered with WELCOME), then INITIATE (answered with READY).

        Raises:
            HandshakeError: an unexpected or malformed command.
            AuthenticationFailed: ``authorize`` refused the credentials.
        """
        if self._stage == "hello" and command.name == HELLO:
            credentials = parse_hello(command.data)
            if self.authorize is None:
                self.username = credentials.username
                self._stage = "zap"
                self._ask_zap((credentials.username, credentials.password))
                return []
            if not self.authorize(credentials):
                self._stage = "failed"
                raise AuthenticationFailed(
                    f"PLAIN credentials for user {credentials.username!r} were refused",
                    reason=b"400",
                )
            self.username = self.user_id = credentials.username
            self._stage = "initiate"
            return [encode_command(WELCOME)]
        if self._stage == "initiate" and command.name == INITIATE:
            self.peer_metadata = parse_properties(command.data, max_size=self.max_metadata_size)
            self._stage = "done"
            self.status = MechanismStatus.READY
            return [encode_command(READY, encode_properties(self._properties))]
        expected = {"hello": "HELLO", "initiate": "INITIATE"}.get(self._stage)
        if self._stage == "zap":
            expected = None  # the connection holds commands while ZAP decides
        raise HandshakeError(
            f"unexpected {command.name!r} in the PLAIN handshake"
            + (f" (expected {expected})" if expected else ""),
            reason=b"Unexpected command",
        )

    def zap_unavailable(self) -> list[bytes]:
        self._zap_answered()
        self._stage = "failed"
        raise AuthenticationUnavailable(
            "a PLAIN server needs a ZAP handler at inproc://zeromq.zap.01 and none is "
            "bound (libzmq refuses every client then)",
            reason=b"No ZAP handler",
        )

    def zap_reply(
        self, status_code: bytes, user_id: bytes = b"", metadata: Metadata | None = None
    ) -> list[bytes]:
        try:
            return super().zap_reply(status_code, user_id, metadata)
        except AuthenticationFailed:
            self._stage = "failed"
            raise

    def _zap_accepted(self) -> list[bytes]:
        self._stage = "initiate"
        return [encode_command(WELCOME)]
