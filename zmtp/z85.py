"""Z85 (RFC 32), the text form of CURVE keys: ``zmtp.z85.encode`` and ``decode``, as
pyzmq's ``zmq.utils.z85``.  The codec lives in the protocol core
(:mod:`zmtp.protocol.z85`); this is its public name."""

from .protocol.z85 import decode, encode

__all__ = ["decode", "encode"]
