"""Socket options: names, defaults and validation.

Names are libzmq's without the ``ZMQ_`` prefix, lower-cased; units are libzmq's
(milliseconds, messages, bytes).  Every option is validated when set, so a typo or a bad
value raises at once instead of misbehaving later.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..protocol import z85
from ..protocol.keys import normalize_key
from ..protocol.metadata import check_property_name
from ..protocol.socket_types import SocketType

__all__ = ["OPTIONS", "OptionSpec", "validate_option"]

_ALL = frozenset(SocketType)
_S = SocketType


def _int_range(lo: int, hi: int | None = None) -> Callable[[str, object], int]:
    def check(name: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"option {name} must be an int, not {type(value).__name__}")
        if value < lo or (hi is not None and value > hi):
            bounds = f">= {lo}" if hi is None else f"in {lo}..{hi}"
            raise ValueError(f"option {name} must be {bounds}, got {value}")
        return value

    return check


def _bool(name: str, value: object) -> bool:
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise TypeError(f"option {name} must be a bool, not {value!r}")


def _routing_id(name: str, value: object) -> bytes:
    if isinstance(value, str):
        raise TypeError(f"option {name} must be bytes, not str (encode it first)")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"option {name} must be bytes, not {type(value).__name__}")
    value = bytes(value)
    if len(value) > 255:
        raise ValueError(f"option {name} is at most 255 bytes, got {len(value)}")
    if value[:1] == b"\x00":
        raise ValueError(f"option {name} may not start with a zero byte (reserved by RFC 37)")
    return value


def _optional_bytes(name: str, value: object) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError(f"option {name} must be bytes, not str (encode it first)")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"option {name} must be bytes or None, not {type(value).__name__}")
    return bytes(value)


def _metadata(name: str, value: object) -> dict[str, bytes]:
    if not isinstance(value, Mapping):
        raise TypeError(f"option {name} must be a mapping of X- names to bytes")
    out: dict[str, bytes] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not key.lower().startswith("x-"):
            raise ValueError(f"option {name}: property names must start with 'X-', got {key!r}")
        check_property_name(key)
        if not isinstance(val, bytes):
            raise TypeError(f"option {name}: value of {key!r} must be bytes")
        out[key] = val
    return out


def _curve_key(name: str, value: object) -> bytes | None:
    """A CURVE key in any form libzmq takes (32 raw octets, 40 Z85 characters, bytes or
    str); kept as Z85 bytes, which is what pyzmq's getsockopt returns."""
    if value is None:
        return None
    if not isinstance(value, bytes | bytearray | memoryview | str):
        raise TypeError(f"option {name} must be a key as bytes or str, not {type(value).__name__}")
    try:
        raw = normalize_key(value, name=name)
    except ValueError as exc:
        raise ValueError(f"option {name}: {exc}") from None
    return z85.encode(raw)


def _credential(name: str, value: object) -> bytes | None:
    """A PLAIN username or password, or ZAP domain: bytes or str (UTF-8), <= 255 octets."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"option {name} must be bytes or str, not {type(value).__name__}")
    value = bytes(value)
    if len(value) > 255:
        raise ValueError(f"option {name} is at most 255 octets, got {len(value)}")
    return value


def _domain(name: str, value: object) -> bytes:
    return _credential(name, value) or b""


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One option: default, validator and the socket types it applies to."""

    default: Any
    check: Callable[[str, object], Any]
    types: frozenset[SocketType] = _ALL
    doc: str = ""


_ms = _int_range(-1)
_nonneg = _int_range(0)

#: Every supported option.
OPTIONS: dict[str, OptionSpec] = {
    "routing_id": OptionSpec(b"", _routing_id, doc="Identity sent to peers (REQ, DEALER, ROUTER)"),
    "sndhwm": OptionSpec(
        1000, _nonneg, doc="outbound high-water mark per peer, messages; 0 = none"
    ),
    "rcvhwm": OptionSpec(1000, _nonneg, doc="inbound high-water mark per peer, messages; 0 = none"),
    "linger": OptionSpec(-1, _ms, doc="ms to flush queued messages on close; -1 = forever"),
    "reconnect_ivl": OptionSpec(100, _ms, doc="ms before reconnecting; -1 = never reconnect"),
    "reconnect_ivl_max": OptionSpec(0, _nonneg, doc="backoff cap in ms; 0 = no backoff"),
    # A zmtp extension: libzmq gives up on an endpoint after a protocol error
    # (specs/libzmq-behaviour.md §2.5), which leaves a long-running connector (a proxy)
    # deaf to an upstream that was misconfigured for a moment.
    "reconnect_on_protocol_error": OptionSpec(
        False, _bool, doc="keep reconnecting after a protocol error (zmtp extension)"
    ),
    "handshake_ivl": OptionSpec(30000, _nonneg, doc="ms a handshake may take; 0 = forever"),
    "maxmsgsize": OptionSpec(-1, _int_range(-1), doc="largest frame accepted, bytes; -1 = none"),
    "immediate": OptionSpec(False, _bool, doc="queue only to completed connections"),
    "router_mandatory": OptionSpec(
        False, _bool, frozenset({_S.ROUTER}), "raise on unroutable messages"
    ),
    "router_handover": OptionSpec(
        False, _bool, frozenset({_S.ROUTER}), "a new peer with a known id takes it over"
    ),
    "probe_router": OptionSpec(
        False,
        _bool,
        frozenset({_S.ROUTER, _S.DEALER, _S.REQ}),
        "send an empty message to each new peer",
    ),
    "heartbeat_ivl": OptionSpec(0, _nonneg, doc="ms between PINGs; 0 = off"),
    "heartbeat_ttl": OptionSpec(0, _int_range(0, 6553599), doc="TTL advertised in PINGs, ms"),
    "heartbeat_timeout": OptionSpec(
        -1, _ms, doc="ms to wait for traffic after a PING; -1 = heartbeat_ivl"
    ),
    "metadata": OptionSpec({}, _metadata, doc="extra X- properties sent in the handshake"),
    "conflate": OptionSpec(False, _bool, frozenset(), "not supported"),
    "xpub_verbose": OptionSpec(False, _bool, frozenset({_S.XPUB}), "pass every subscribe up"),
    "xpub_verboser": OptionSpec(
        False, _bool, frozenset({_S.XPUB}), "pass every subscribe and unsubscribe up"
    ),
    "xpub_manual": OptionSpec(
        False, _bool, frozenset({_S.XPUB}), "the application manages subscriptions"
    ),
    "xpub_nodrop": OptionSpec(
        False, _bool, frozenset({_S.XPUB, _S.PUB}), "block instead of dropping at the HWM"
    ),
    "xpub_welcome_msg": OptionSpec(
        None, _optional_bytes, frozenset({_S.XPUB}), "message sent to each new subscriber"
    ),
    # Security (RFC 24, 26, 27): the mechanism follows from which of these are set
    # (zmtp.sockets._security); a contradictory combination is refused when set.
    "curve_server": OptionSpec(False, _bool, doc="be a CURVE server (needs curve_secretkey)"),
    "curve_secretkey": OptionSpec(None, _curve_key, doc="our CURVE secret key"),
    "curve_publickey": OptionSpec(
        None, _curve_key, doc="our CURVE public key (derived from the secret if unset)"
    ),
    "curve_serverkey": OptionSpec(
        None, _curve_key, doc="the server's CURVE public key: makes this a CURVE client"
    ),
    "plain_server": OptionSpec(False, _bool, doc="be a PLAIN server (needs a ZAP handler)"),
    "plain_username": OptionSpec(None, _credential, doc="PLAIN username: makes this a client"),
    "plain_password": OptionSpec(None, _credential, doc="PLAIN password"),
    "zap_domain": OptionSpec(b"", _domain, doc="ZAP domain (RFC 27); NULL asks ZAP only with one"),
    "zap_enforce_domain": OptionSpec(
        False, _bool, doc="refuse peers when ZAP is needed and no handler is bound"
    ),
}
# conflate is listed so that asking for it gives a precise error, not "unknown option".
_UNSUPPORTED = {"conflate": "conflate is not supported yet"}


def validate_option(socket_type: SocketType, name: str, value: object) -> Any:
    """Check an option for a socket type; return the normalised value.

    Raises:
        ValueError: unknown option, not applicable to this socket type, or a bad value.
        TypeError: a value of the wrong type.
    """
    spec = OPTIONS.get(name)
    if spec is None:
        raise ValueError(f"unknown socket option {name!r}")
    if name in _UNSUPPORTED:
        raise ValueError(_UNSUPPORTED[name])
    if socket_type not in spec.types:
        raise ValueError(f"option {name!r} does not apply to {socket_type.name} sockets")
    return spec.check(name, value)
