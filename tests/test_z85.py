"""Z85 (RFC 32) and CURVE key forms: zmtp.protocol.z85, zmtp.protocol.keys.

Agreement with pyzmq's ``zmq.utils.z85`` and ``zmq.curve_*`` is in
``interop/test_keys_interop.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import zmtp
from zmtp.protocol import z85
from zmtp.protocol.keys import normalize_key

#: RFC 32 §"Test Case".
RFC_BINARY = bytes((0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B))
RFC_TEXT = b"HelloWorld"

#: The example server key pair of libzmq's zmq_curve(7) manual page.
PUBLIC_Z85 = b"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
SECRET_Z85 = b"D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"


class TestRfcVector:
    def test_encode(self) -> None:
        assert z85.encode(RFC_BINARY) == RFC_TEXT

    @pytest.mark.parametrize("text", [RFC_TEXT, RFC_TEXT.decode(), bytearray(RFC_TEXT)])
    def test_decode(self, text: bytes | str) -> None:
        assert z85.decode(text) == RFC_BINARY

    def test_alphabet(self) -> None:
        assert len(z85.ALPHABET) == len(set(z85.ALPHABET)) == 85
        assert z85.encode(bytes(4)) == b"00000"
        assert z85.encode(b"\xff" * 4) == b"%nSc0"
        assert z85.encode(b"") == z85.decode("") == b""


class TestStrictness:
    @pytest.mark.parametrize("size", [1, 2, 3, 5, 31, 33])
    def test_encode_length(self, size: int) -> None:
        with pytest.raises(ValueError, match="multiple of 4"):
            z85.encode(bytes(size))

    @pytest.mark.parametrize("size", [1, 4, 6, 39, 41])
    def test_decode_length(self, size: int) -> None:
        with pytest.raises(ValueError, match="multiple of 5"):
            z85.decode(b"0" * size)

    @pytest.mark.parametrize(
        ("text", "where"),
        [
            (b"Hello Worl", "' ' at position 5"),
            (b'"ello', "'\"' at position 0"),
            (b"0000~", "'~' at position 4"),
            (b"0000\x00", "position 4"),
            (b"0000,", "',' at position 4"),
        ],
    )
    def test_decode_alphabet(self, text: bytes, where: str) -> None:
        with pytest.raises(ValueError, match=f"invalid Z85 character .*{where}"):
            z85.decode(text)

    def test_decode_non_ascii_str(self) -> None:
        with pytest.raises(ValueError, match="non-ASCII character at position 2"):
            z85.decode("00é00")

    @pytest.mark.parametrize("text", [b"%nSc1", b"#####", b"00000%nSc1"])
    def test_decode_overflow(self, text: bytes) -> None:
        with pytest.raises(ValueError, match="does not fit in 32 bits"):
            z85.decode(text)

    @pytest.mark.parametrize("value", [None, 12, ["ab"], "abcd"])
    def test_encode_type(self, value: object) -> None:
        with pytest.raises(TypeError, match="Z85 encodes bytes"):
            z85.encode(value)  # type: ignore[arg-type]

    @pytest.mark.parametrize("value", [None, 12345, [b"00000"]])
    def test_decode_type(self, value: object) -> None:
        with pytest.raises(TypeError, match="Z85 decodes str or bytes"):
            z85.decode(value)  # type: ignore[arg-type]


@given(st.binary().map(lambda b: b[: len(b) // 4 * 4]))
def test_round_trip_from_binary(data: bytes) -> None:
    text = z85.encode(data)
    assert len(text) == len(data) // 4 * 5
    assert set(text) <= set(z85.ALPHABET)
    assert z85.decode(text) == z85.decode(text.decode()) == data


@given(st.lists(st.sampled_from(z85.ALPHABET), max_size=60).map(bytes))
def test_every_valid_text_decodes_to_its_one_meaning(text: bytes) -> None:
    text = text[: len(text) // 5 * 5]
    try:
        data = z85.decode(text)
    except ValueError as exc:
        assert "32 bits" in str(exc)  # only an overflowing group is refused
        return
    assert z85.encode(data) == text


@given(st.binary(max_size=50) | st.text(max_size=50))
def test_garbage_is_a_value_error_or_decodes(text: bytes | str) -> None:
    try:
        data = z85.decode(text)
    except ValueError:
        return
    assert z85.encode(data) == (text.encode() if isinstance(text, str) else text)


class TestKeys:
    def test_keypair_shape(self) -> None:
        public, secret = zmtp.curve_keypair()
        assert len(public) == len(secret) == 40
        assert zmtp.curve_public(secret) == public
        assert zmtp.curve_keypair() != (public, secret)

    def test_known_pair(self) -> None:
        assert zmtp.curve_public(SECRET_Z85) == PUBLIC_Z85
        assert zmtp.curve_public(SECRET_Z85.decode()) == PUBLIC_Z85
        assert zmtp.curve_public(z85.decode(SECRET_Z85)) == PUBLIC_Z85

    @pytest.mark.parametrize(
        "form",
        [
            PUBLIC_Z85,
            PUBLIC_Z85.decode(),
            PUBLIC_Z85 + b"\x00",
            bytearray(PUBLIC_Z85),
            z85.decode(PUBLIC_Z85),
            memoryview(z85.decode(PUBLIC_Z85)),
        ],
        ids=["z85-bytes", "z85-str", "z85-nul", "bytearray", "raw", "memoryview"],
    )
    def test_normalize_accepts_libzmqs_forms(self, form: bytes | str) -> None:
        assert normalize_key(form) == z85.decode(PUBLIC_Z85)

    @pytest.mark.parametrize(
        ("form", "message"),
        [
            (b"", "got 0 bytes"),
            (bytes(31), "got 31 bytes"),
            (bytes(33), "got 33 bytes"),
            (PUBLIC_Z85[:-1], "got 39 bytes"),
            (PUBLIC_Z85 + b"0", "got 41 bytes"),
            (PUBLIC_Z85 + b"\x00\x00", "got 42 bytes"),
            ("x" * 32, "40 Z85 characters, got 32"),
            (b"~" + PUBLIC_Z85[1:], "invalid Z85 CURVE key"),
            (PUBLIC_Z85.decode()[:-1] + "é", "invalid Z85 CURVE key"),
        ],
    )
    def test_normalize_refuses(self, form: bytes | str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            normalize_key(form)

    @pytest.mark.parametrize("form", [None, 42, [PUBLIC_Z85]])
    def test_normalize_type(self, form: object) -> None:
        with pytest.raises(TypeError, match="must be bytes or str"):
            normalize_key(form)  # type: ignore[arg-type]


def test_public_name_is_zmtp_z85() -> None:
    # The spelling, as pyzmq's zmq.utils.z85: zmtp.z85.encode / decode.
    import zmtp  # noqa: PLC0415

    key = bytes(range(32))
    assert zmtp.z85.decode(zmtp.z85.encode(key)) == key
    assert zmtp.z85.encode is z85.encode
