"""A ZAP handler (RFC 27) with pyzmq's ``zmq.auth`` API, the trio way.

``async with Authenticator(ctx) as auth:`` binds a ROUTER at ``inproc://zeromq.zap.01``
in ``ctx`` and answers the authentication requests of that Context's PLAIN and CURVE
servers (and NULL servers with a ZAP domain) until the block is left.  The policy is
configured with pyzmq's method names and decided as pyzmq 27's ``zmq.auth.Authenticator``
decides it (``handle_zap_message`` in ``zmq/auth/base.py``), so an application moving
from pyzmq keeps its behaviour:

* ``allow(*addresses)`` / ``deny(*addresses)``: an IP allow list (only those pass) or a
  deny list (those are refused); using both is a ``ValueError``, as in pyzmq.  A
  refused address is refused whatever the mechanism; an allowed one still has to pass
  PLAIN or CURVE.
* NULL is let in unless its address is refused.
* ``configure_plain(domain, passwords)``: a ``{username: password}`` mapping per domain.
* ``configure_curve(domain, location)``: :data:`CURVE_ALLOW_ANY`, a directory of public
  certificates, or (our addition) an iterable of public keys.
  ``configure_curve_callback(domain, provider)``: ask ``provider.callback(domain, key)``.
* Domains as pyzmq matches them: a request's domain is looked up *exactly*, except that
  an empty domain (libzmq's default) is looked up as ``"*"``.  So ``"*"``, the default of
  every ``configure_*``, means "servers with no ZAP domain", not "every domain".
* Replies: ``200 OK`` with a user id (the PLAIN username; for CURVE the client's Z85
  public key, from :meth:`Authenticator.curve_user_id`; ``anonymous`` otherwise), or
  ``400`` with pyzmq's status texts.

Where we differ from pyzmq, on purpose:

* Passwords are compared as bytes, in constant time: a configured ``str`` is encoded
  with ``encoding``.  (pyzmq decodes what arrives with ``errors="replace"`` and compares
  text, so two different undecodable passwords compare equal there.)  No log line holds
  a password (pyzmq logs it at DEBUG on success).
* A request that is not well formed (:func:`zmtp.protocol.zap.parse_request`) gets 400
  with pyzmq's texts (``Not enough frames``, ``Invalid version``, ``Invalid
  credentials``) *before* the address lists are consulted; that includes NULL with
  credentials and a CURVE key that is not 32 octets, which pyzmq lets through (or
  crashes on).  libzmq never sends such requests.
* A credentials provider that raises gets the peer a ``500`` (RFC 27's internal error)
  and a logged traceback; the authenticator keeps serving.  A request with no
  delimiter, or fewer than two frames, is dropped with a log line.
* pyzmq's quirks are kept: :data:`CURVE_ALLOW_ANY` applies to *every* domain once set
  for any, and any ``configure_curve`` with a location (or a callback) turns it off
  again; once a callback is configured for any domain, certificates are no longer
  consulted for any domain.

Requests are answered one at a time, in arrival order, so a slow asynchronous
credentials callback delays the requests behind it.
"""

from __future__ import annotations

import hmac
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

import trio

from ..protocol import z85
from ..protocol.keys import normalize_key
from ..protocol.zap import (
    ZAP_ENDPOINT,
    ZapError,
    ZapReply,
    encode_reply,
    parse_request,
)
from .certs import load_certificates

if TYPE_CHECKING:
    from types import TracebackType

    from ..sockets import Context, Socket

__all__ = ["CURVE_ALLOW_ANY", "Authenticator", "CredentialsProvider"]

#: ``configure_curve(location=CURVE_ALLOW_ANY)``: any CURVE client key is let in (the
#: connection is still encrypted and the server authenticated: "Stonehouse").
CURVE_ALLOW_ANY: Final = "*"

_OK: Final = b"200"
_REFUSED: Final = b"400"
_INTERNAL_ERROR: Final = b"500"


class CredentialsProvider(Protocol):
    """What ``configure_curve_callback`` takes, as in pyzmq: an object whose
    ``callback(domain, key)`` says whether to let a CURVE client in.

    ``domain`` is the request's domain (``"*"`` for an empty one) and ``key`` the
    client's public key as 40 Z85 bytes.  The result may be awaitable.
    """

    def callback(self, domain: str, key: bytes) -> bool | Awaitable[bool]:
        """True to let the client in."""
        ...


#: A credentials callback given directly, as a function instead of an object.
CredentialsCallback = Callable[[str, bytes], "bool | Awaitable[bool]"]


class Authenticator:
    """The ZAP handler of one :class:`zmtp.Context`.

    Use as ``async with Authenticator(ctx) as auth:`` (configure inside or before the
    block), or ``await auth.start()`` ... ``await auth.stop()`` as with pyzmq's
    ``AsyncioAuthenticator``.  Either way the serving task runs in the Context's
    nursery and has ended when the block is left or ``stop`` returns, cancelled or not.
    Configuration may change while it runs; each request sees the current policy.

    Args:
        context: the Context whose servers to answer; it must be entered.
        encoding: how configured ``str`` usernames and passwords become bytes, and how
            domains and addresses are read (undecodable octets replaced), as in pyzmq.
        log: the logger for decisions (DEBUG) and failures; ``zmtp.auth`` by default.

    Attributes:
        zap_socket: the ROUTER bound at ``inproc://zeromq.zap.01`` while started, else
            None.
        passwords: ``{domain: {username: password}}``, as pyzmq keeps it.  The inner
            mappings are kept as given, so a change to one applies to the next request.
        certs: ``{domain: set of 32-octet public keys}``.
        credentials_providers: ``{domain: provider or callable}``.
        allow_any: :data:`CURVE_ALLOW_ANY` is in force.
    """

    def __init__(
        self,
        context: Context,
        encoding: str = "utf-8",
        log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        self.context = context
        self.encoding = encoding
        self.log = log if log is not None else logging.getLogger("zmtp.auth")
        self.allow_any = False
        self.passwords: dict[str, Mapping[str | bytes, str | bytes]] = {}
        self.certs: dict[str, frozenset[bytes]] = {}
        self.credentials_providers: dict[str, CredentialsProvider | CredentialsCallback] = {}
        self.zap_socket: Socket | None = None
        self._allowed: set[str] = set()
        self._denied: set[str] = set()
        self._scope: trio.CancelScope | None = None
        self._done: trio.Event | None = None

    # ------------------------------------------------------------------ lifetime

    async def start(self) -> None:
        """Bind the ZAP socket and start answering requests.

        Raises:
            RuntimeError: already started, or another ZAP handler is bound in this
                Context (RFC 27: one handler per process; here, per Context).
            trio.ClosedResourceError: the Context is closed.
        """
        if self.zap_socket is not None:
            raise RuntimeError("this Authenticator is already started")
        sock = self.context.socket("ROUTER", linger=0)
        try:
            await sock.bind(ZAP_ENDPOINT)
        except ValueError:
            await sock.aclose(linger=0)
            raise RuntimeError(
                f"{ZAP_ENDPOINT} is already in use in this Context: "
                "one ZAP handler (Authenticator) per Context"
            ) from None
        except BaseException:
            with trio.CancelScope(shield=True):
                await sock.aclose(linger=0)
            raise
        self.zap_socket = sock
        self._scope = trio.CancelScope()
        self._done = trio.Event()
        self.context.nursery.start_soon(self._serve, sock, self._scope, self._done)
        self.log.debug("ZAP handler started at %s", ZAP_ENDPOINT)

    async def stop(self) -> None:
        """Stop answering, close the ZAP socket, and wait for the serving task to end.

        Shielded from cancellation (it waits on nothing but that task, which is
        cancelled first), so it always completes.  Calling it when not started does
        nothing.
        """
        sock, scope, done = self.zap_socket, self._scope, self._done
        self.zap_socket = self._scope = self._done = None
        if sock is None or scope is None or done is None:
            return
        with trio.CancelScope(shield=True):
            scope.cancel()
            await done.wait()
            await sock.aclose(linger=0)
        self.log.debug("ZAP handler stopped")

    def is_alive(self) -> bool:
        """True while started (pyzmq's ``ThreadAuthenticator.is_alive``)."""
        return self._done is not None and not self._done.is_set()

    async def __aenter__(self) -> Authenticator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _serve(self, sock: Socket, scope: trio.CancelScope, done: trio.Event) -> None:
        try:
            with scope:
                while True:
                    try:
                        msg = await sock.recv_multipart()
                    except trio.ClosedResourceError:
                        return  # the Context closed under us
                    reply = await self._answer(msg)
                    if reply is None:
                        continue
                    try:
                        # A ROUTER drops what it cannot route (the server went away).
                        await sock.send_multipart(reply)
                    except trio.ClosedResourceError:
                        return
        finally:
            done.set()

    async def _answer(self, msg: list[bytes]) -> list[bytes] | None:
        """The whole reply message (envelope included) for ``msg``, or None to drop it."""
        # RFC 27 "Proxy Handlers": an envelope of routing ids up to an empty delimiter,
        # echoed as it came.  Our ROUTER puts one non-empty routing id first.
        try:
            split = msg.index(b"", 1) + 1
        except ValueError:
            self.log.warning("ZAP request without an envelope delimiter dropped")
            return None
        envelope, frames = msg[:split], msg[split:]
        try:
            reply = await self.handle_zap_message(frames)
        except Exception:
            # A bug of ours or of an override: answer nothing rather than die.
            self.log.exception("ZAP request could not be handled; dropped")
            return None
        return None if reply is None else [*envelope, *encode_reply(reply)]

    # ------------------------------------------------------------ configuration

    def allow(self, *addresses: str) -> None:
        """Let in only these IP addresses (and those of earlier calls).

        NULL clients from them are let in; PLAIN and CURVE clients still authenticate.

        Raises:
            ValueError: a deny list is configured (pyzmq: one or the other).
        """
        if self._denied:
            raise ValueError("Only use allow or deny, not both")
        self.log.debug("Allowing %s", ",".join(addresses))
        self._allowed.update(addresses)

    def deny(self, *addresses: str) -> None:
        """Refuse these IP addresses (and those of earlier calls); let the others
        go on to authenticate.

        Raises:
            ValueError: an allow list is configured.
        """
        if self._allowed:
            raise ValueError("Only use allow or deny, not both")
        self.log.debug("Denying %s", ",".join(addresses))
        self._denied.update(addresses)

    def configure_plain(
        self,
        domain: str = "*",
        passwords: Mapping[str, str] | Mapping[bytes, bytes] | None = None,
    ) -> None:
        """PLAIN: the ``{username: password}`` of ``domain`` (``str`` or ``bytes``).

        ``"*"`` serves servers with no ZAP domain.  Without ``passwords`` (or with an
        empty mapping) nothing changes, as in pyzmq.  The mapping is kept, not copied.
        """
        if passwords:
            self.passwords[domain] = passwords  # type: ignore[assignment]
        self.log.debug("Configure plain: %s", domain)

    def configure_curve(
        self,
        domain: str = "*",
        location: str | os.PathLike[str] | Iterable[bytes | str] = ".",
    ) -> None:
        """CURVE: which client keys ``domain`` lets in.

        Args:
            domain: ``"*"`` serves servers with no ZAP domain.
            location: :data:`CURVE_ALLOW_ANY` to let any key in (every domain, as in
                pyzmq); a directory of public certificates (``*.key``, read now: call
                again after changing it); or an iterable of public keys, 40 Z85
                characters or 32 raw octets each.

        A directory that cannot be read, or holds a bad certificate, is logged as an
        error and leaves ``domain``'s keys as they were (pyzmq does the same).

        Raises:
            ValueError, TypeError: a key in the iterable is not a CURVE public key.
        """
        self.log.debug("Configure curve: %s[%s]", domain, location)
        if isinstance(location, str) and location == CURVE_ALLOW_ANY:
            self.allow_any = True
            return
        self.allow_any = False
        if isinstance(location, bytes | bytearray | memoryview):
            raise TypeError(
                "configure_curve location: a directory (str or path), CURVE_ALLOW_ANY, "
                "or an iterable of keys; not one bytes object"
            )
        keys: Iterable[bytes | str]
        if isinstance(location, str | os.PathLike):
            try:
                keys = load_certificates(location)
            except Exception as exc:
                self.log.error("Failed to load CURVE certs from %s: %s", location, exc)
                return
        else:
            keys = location
        self.certs[domain] = frozenset(normalize_key(k, name="client key") for k in keys)

    def configure_curve_callback(
        self,
        domain: str = "*",
        credentials_provider: CredentialsProvider | CredentialsCallback | None = None,
    ) -> None:
        """CURVE: ask ``credentials_provider`` about each client key of ``domain``.

        As in pyzmq, ``credentials_provider.callback(domain, key)`` is called with the
        domain (``"*"`` for an empty one) and the key as Z85 bytes, and returns a truth
        value or an awaitable of one; a plain callable with that signature works too.
        Once any callback is configured, certificates are not consulted (pyzmq).
        ``None`` logs an error and configures nothing (pyzmq).
        """
        self.allow_any = False
        if credentials_provider is None:
            self.log.error("None credentials_provider provided for domain:%s", domain)
            return
        self.credentials_providers[domain] = credentials_provider

    def configure_gssapi(self, domain: str = "*", location: str | None = None) -> None:
        """Nothing to configure (as in pyzmq): GSSAPI requests are let in by principal."""

    def curve_user_id(self, client_public_key: bytes) -> str:
        """The User-Id for a CURVE client let in: its public key in Z85.

        Override to map keys to user names.
        """
        return z85.encode(client_public_key).decode("ascii")

    # ----------------------------------------------------------------- decisions

    async def handle_zap_message(self, frames: list[bytes]) -> ZapReply | None:
        """Decide one request: the frames after the envelope's delimiter.

        Returns the reply, or None when the request is too short to answer (fewer
        than two frames: no request id).  Unlike pyzmq's method of the same name, it
        sends nothing.
        """
        try:
            req = parse_request(frames)
        except ZapError as exc:
            if len(frames) < 2:
                self.log.error("ZAP request of %d frames dropped: no request id", len(frames))
                return None
            self.log.error("Invalid ZAP request: %s", exc)
            return self._reply(frames[1], _REFUSED, exc.reason)

        domain = req.domain.decode(self.encoding, "replace")
        address = req.address.decode(self.encoding, "replace")
        mechanism = req.mechanism.decode("ascii", "replace")
        self.log.debug(
            "ZAP request %r: domain %r, address %r, mechanism %s",
            req.request_id,
            domain,
            address,
            mechanism,
        )

        allowed, denied, reason = False, False, b"NO ACCESS"
        if self._allowed:
            if address in self._allowed:
                allowed = True
            else:
                denied, reason = True, b"Address not allowed"
        elif self._denied:
            if address in self._denied:
                denied, reason = True, b"Address denied"
            else:
                allowed = True

        user_id = "anonymous"
        if not denied:
            # An allowed address lets NULL (and mechanisms ZAP knows nothing about) in;
            # PLAIN and CURVE must authenticate whatever the address.
            if req.mechanism == b"NULL":
                allowed = True
            elif req.mechanism == b"PLAIN":
                username, password = req.credentials
                allowed, reason = self._authenticate_plain(domain, username, password)
                user_id = username.decode(self.encoding, "replace")
            elif req.mechanism == b"CURVE":
                (key,) = req.credentials
                try:
                    allowed, reason = await self._authenticate_curve(domain, key)
                except Exception:
                    self.log.exception("CURVE credentials provider failed for %r", domain)
                    return self._reply(req.request_id, _INTERNAL_ERROR, b"Internal error")
                if allowed:
                    user_id = self.curve_user_id(key)
            elif req.mechanism == b"GSSAPI" and len(req.credentials) == 1:
                # The GSSAPI mechanism has already authenticated the principal.
                allowed, reason = True, b"OK"
                user_id = req.credentials[0].decode("utf-8", "replace")
            elif req.mechanism == b"GSSAPI":
                return self._reply(req.request_id, _REFUSED, b"Invalid credentials")

        if allowed:
            self.log.debug(
                "ALLOWED %s address=%s domain=%r user=%s", mechanism, address, domain, user_id
            )
            return self._reply(req.request_id, _OK, b"OK", user_id.encode(self.encoding, "replace"))
        self.log.debug(
            "DENIED %s address=%s domain=%r: %s", mechanism, address, domain, reason.decode()
        )
        return self._reply(req.request_id, _REFUSED, reason)

    @staticmethod
    def _reply(request_id: bytes, status: bytes, text: bytes, user_id: bytes = b"") -> ZapReply:
        # RFC 27: the user id is empty unless the status is 200; pyzmq sends no metadata.
        return ZapReply(request_id, status, text, user_id if status == _OK else b"")

    def _as_bytes(self, value: str | bytes) -> bytes:
        return value.encode(self.encoding) if isinstance(value, str) else bytes(value)

    def _authenticate_plain(
        self, domain: str, username: bytes, password: bytes
    ) -> tuple[bool, bytes]:
        if not self.passwords:
            return False, b"No passwords defined"
        users = self.passwords.get(domain or "*")
        if users is None:
            return False, b"Invalid domain"
        # The configured names may be str or bytes: look the username up both ways.
        expected: str | bytes | None = users.get(username)
        if expected is None:
            try:
                expected = users.get(username.decode(self.encoding))
            except UnicodeDecodeError:
                expected = None
        if expected is None:
            return False, b"Invalid username"
        if not hmac.compare_digest(self._as_bytes(expected), password):
            return False, b"Invalid password"
        return True, b"OK"

    async def _authenticate_curve(self, domain: str, key: bytes) -> tuple[bool, bytes]:
        if self.allow_any:
            return True, b"OK"
        lookup = domain or "*"
        if self.credentials_providers:
            provider = self.credentials_providers.get(lookup)
            if provider is None:
                return False, b"Unknown domain"
            check: CredentialsCallback = (
                provider.callback if hasattr(provider, "callback") else provider
            )
            verdict = check(lookup, z85.encode(key))
            if inspect.isawaitable(verdict):
                verdict = await verdict
            return (True, b"OK") if verdict else (False, b"Unknown key")
        keys = self.certs.get(lookup)
        if keys is None:
            return False, b"Unknown domain"
        return (True, b"OK") if key in keys else (False, b"Unknown key")
