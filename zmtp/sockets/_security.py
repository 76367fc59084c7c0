"""The security mechanism a socket's options ask for, built afresh for each connection.

libzmq keeps one ``mechanism`` option that the last security option set overwrites
(``ZMQ_CURVE_SERVER``, ``ZMQ_CURVE_SERVERKEY``, ``ZMQ_PLAIN_SERVER``,
``ZMQ_PLAIN_USERNAME``...).  Here the mechanism follows from which options are set, and
a combination that names two mechanisms or two roles is refused when it is made
(:func:`check_combination`, from ``set_option``), while one that is incomplete (a CURVE
socket without its secret key) is refused at ``bind``/``connect``
(:func:`security_for`): either way the user hears of it at once, instead of from a
handshake that fails later on the other side.

When a mechanism asks the ZAP handler (RFC 27) follows libzmq 4.3.5
(specs/libzmq-behaviour.md §4.3): NULL only with a ``zap_domain``; a PLAIN server
always; a CURVE server unless ``zap_enforce_domain`` is set without a domain.  What an
absent handler means is the mechanism's rule (:meth:`Mechanism.zap_unavailable`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..protocol.keys import curve_public
from ..protocol.mechanisms import Mechanism, NullMechanism, PlainClient, PlainServer

__all__ = ["SECURITY_OPTIONS", "Security", "check_combination", "security_for"]

#: The options that choose and configure the mechanism.
SECURITY_OPTIONS = frozenset(
    {
        "curve_server",
        "curve_secretkey",
        "curve_publickey",
        "curve_serverkey",
        "plain_server",
        "plain_username",
        "plain_password",
        "zap_domain",
        "zap_enforce_domain",
    }
)


@dataclass(frozen=True, slots=True)
class Security:
    """What a socket's connections run: the mechanism's name, its role, and a factory
    for a fresh mechanism object per connection."""

    mechanism: bytes
    server: bool
    build: Callable[[], Mechanism]


def _wants_curve(opts: Mapping[str, Any]) -> bool:
    return bool(opts["curve_server"]) or opts["curve_serverkey"] is not None


def _wants_plain(opts: Mapping[str, Any]) -> bool:
    return (
        bool(opts["plain_server"])
        or opts["plain_username"] is not None
        or opts["plain_password"] is not None
    )


def check_combination(opts: Mapping[str, Any]) -> None:
    """Refuse options that name two mechanisms or two roles.

    Raises:
        ValueError: with what to write instead.
    """
    if _wants_curve(opts) and _wants_plain(opts):
        raise ValueError(
            "a socket has one security mechanism: CURVE (curve_server/curve_serverkey) "
            "and PLAIN (plain_server/plain_username/plain_password) options are both set"
        )
    if opts["curve_server"] and opts["curve_serverkey"] is not None:
        raise ValueError(
            "curve_server=True and curve_serverkey contradict each other: a CURVE server "
            "has no server key (a client sets curve_serverkey to the server's public key)"
        )
    if opts["plain_server"] and (
        opts["plain_username"] is not None or opts["plain_password"] is not None
    ):
        raise ValueError(
            "plain_server=True and plain_username/plain_password contradict each other: "
            "a PLAIN server checks credentials through its ZAP handler, a client sends them"
        )


def security_for(opts: Mapping[str, Any]) -> Security:
    """The mechanism a socket's options ask for.

    Raises:
        ValueError: an incomplete configuration (no CURVE secret key, a public key that
            is not the secret key's).
        ImportError: CURVE without PyNaCl installed.
    """
    check_combination(opts)
    domain: bytes = opts["zap_domain"]
    enforce: bool = opts["zap_enforce_domain"]
    if _wants_curve(opts):
        return _curve(opts, domain, enforce)
    if opts["plain_server"]:
        return Security(b"PLAIN", True, PlainServer)
    if _wants_plain(opts):
        username: bytes = opts["plain_username"] or b""
        password: bytes = opts["plain_password"] or b""
        return Security(b"PLAIN", False, lambda: PlainClient(username, password))
    zap = bool(domain)
    return Security(b"NULL", False, lambda: NullMechanism(zap=zap, zap_enforce=enforce))


def _curve(opts: Mapping[str, Any], domain: bytes, enforce: bool) -> Security:
    secret = opts["curve_secretkey"]
    server = bool(opts["curve_server"])
    if secret is None:
        role = "server" if server else "client"
        raise ValueError(
            f"a CURVE {role} needs curve_secretkey (and, optionally, curve_publickey): "
            "make a key pair with zmtp.curve_keypair()"
        )
    public = curve_public(secret)
    given = opts["curve_publickey"]
    if given is not None and given != public:
        raise ValueError(
            "curve_publickey does not belong to curve_secretkey (leave it unset: it is "
            f"derived from the secret key, {public.decode()})"
        )
    # Imported here: PyNaCl is the `curve` extra, needed only by CURVE sockets.
    from ..protocol.mechanisms.curve import CurveClient, CurveServer  # noqa: PLC0415

    if server:
        # libzmq asks ZAP unless the domain is empty and zap_enforce_domain is set.
        zap = bool(domain) or not enforce
        return Security(
            b"CURVE",
            True,
            lambda: CurveServer(secret, zap=zap, zap_enforce=enforce),
        )
    server_key = opts["curve_serverkey"]
    assert server_key is not None
    return Security(b"CURVE", False, lambda: CurveClient(server_key, public, secret))
