"""Z85 and CURVE keys agree with pyzmq's (libzmq's) both ways.

``zmq.utils.z85`` is pyzmq's own Z85; ``zmq.curve_keypair`` and ``zmq.curve_public``
call libzmq (libsodium).  Keys made by either side must derive the same public key in
the other, and each Z85 codec must read the other's text.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import zmtp
from zmtp.protocol import z85

zmq = pytest.importorskip("zmq")
zmq_z85 = pytest.importorskip("zmq.utils.z85")

pytestmark = pytest.mark.interop


@given(st.binary(max_size=256).map(lambda b: b[: len(b) // 4 * 4]))
def test_z85_agrees_with_pyzmq(data: bytes) -> None:
    assert z85.encode(data) == zmq_z85.encode(data)
    assert z85.decode(zmq_z85.encode(data)) == data
    assert zmq_z85.decode(z85.encode(data)) == data


def test_z85_rfc_vector_in_pyzmq() -> None:
    assert zmq_z85.decode(b"HelloWorld") == z85.decode(b"HelloWorld")


def test_our_keys_in_libzmq() -> None:
    for _ in range(20):
        public, secret = zmtp.curve_keypair()
        assert zmq.curve_public(secret) == public


def test_libzmqs_keys_in_ours() -> None:
    for _ in range(20):
        public, secret = zmq.curve_keypair()
        assert zmtp.curve_public(secret) == public
        assert zmtp.curve_public(secret.decode()) == public
        assert zmtp.curve_public(z85.decode(secret)) == public
