"""Errors of the socket layer (the protocol's own are in :mod:`zmtp.protocol.errors`)."""

from __future__ import annotations

from ..protocol.errors import ZMTPError

__all__ = ["InvalidStateError", "NotSupportedError", "UnroutableError"]


class InvalidStateError(ZMTPError):
    """The operation is not valid in the socket's current state (libzmq's EFSM).

    For example ``send`` twice on a REQ socket without a ``recv`` in between.
    """


class NotSupportedError(ZMTPError):
    """The socket type does not support the operation (libzmq's ENOTSUP)."""


class UnroutableError(ZMTPError):
    """A ROUTER with ``router_mandatory`` was asked to send to an unknown routing id
    (libzmq's EHOSTUNREACH)."""
