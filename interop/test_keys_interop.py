"""Z85 and CURVE keys agree with pyzmq's (libzmq's) both ways.

``zmq.utils.z85`` is pyzmq's own Z85; ``zmq.curve_keypair`` and ``zmq.curve_public``
call libzmq (libsodium).  Keys made by either side must derive the same public key in
the other, each Z85 codec must read the other's text, and each side's certificate files
must load in the other.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import zmtp
from zmtp.auth import create_certificates, load_certificate, load_certificates
from zmtp.protocol import z85

zmq = pytest.importorskip("zmq")
zmq_z85 = pytest.importorskip("zmq.utils.z85")
zmq_auth = pytest.importorskip("zmq.auth")

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


def test_pyzmq_reads_our_certificates(tmp_path: Path) -> None:
    public_file, secret_file = create_certificates(tmp_path, "ours", {"owner": "zmtp"})
    public, secret = load_certificate(secret_file)
    assert zmq_auth.load_certificate(secret_file) == (public, secret)
    assert zmq_auth.load_certificate(public_file) == (public, None)
    assert zmq_auth.load_certificates(tmp_path) == {public: True}


def test_we_read_pyzmqs_certificates(tmp_path: Path) -> None:
    public_file, secret_file = zmq_auth.create_certificates(str(tmp_path), "theirs", {"a": "b"})
    public, secret = zmq_auth.load_certificate(secret_file)
    assert load_certificate(secret_file) == (public, secret)
    assert load_certificate(public_file) == (public, None)
    assert load_certificates(tmp_path) == [public]
