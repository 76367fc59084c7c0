"""Metadata properties (zmtp.protocol.metadata), RFC 23/37 "The NULL Security Mechanism" and
"Connection Metadata".

Wire form: ``name-size(1) name value-size(4, network order) value``.
"""

from __future__ import annotations

import construct
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zmtp.protocol.errors import HandshakeError
from zmtp.protocol.metadata import (
    DEFAULT_MAX_METADATA_SIZE,
    Metadata,
    check_property_name,
    encode_properties,
    parse_properties,
)
from zmtp.tools import grammar


def prop(name: bytes, value: bytes) -> bytes:
    """One property spelled out independently of both codecs."""
    return bytes((len(name),)) + name + len(value).to_bytes(4, "big") + value


# (wire bytes, [(name, value)] in wire order)
GOLDEN = [
    pytest.param(b"", [], id="empty"),
    # [P] the properties of a bound libzmq ROUTER's READY.
    pytest.param(
        bytes.fromhex("0b")
        + b"Socket-Type"
        + bytes.fromhex("00000006")
        + b"ROUTER"
        + bytes.fromhex("08")
        + b"Identity"
        + bytes.fromhex("00000000"),
        [("Socket-Type", b"ROUTER"), ("Identity", b"")],
        id="libzmq-router",
    ),
    # [P] a libzmq PUB sends only Socket-Type.
    pytest.param(
        bytes.fromhex("0b") + b"Socket-Type" + bytes.fromhex("00000003") + b"PUB",
        [("Socket-Type", b"PUB")],
        id="libzmq-pub",
    ),
    pytest.param(
        prop(b"X-App", b"\x00\xffbinary") + prop(b"a.b_c+d-9", b""),
        [("X-App", b"\x00\xffbinary"), ("a.b_c+d-9", b"")],
        id="app-metadata-all-name-chars",
    ),
    pytest.param(prop(b"N" * 255, b"v" * 300), [("N" * 255, b"v" * 300)], id="longest-name"),
]

# Property lists that must be refused: (wire bytes, what the error says).
MALFORMED = [
    # libzmq answers a single stray trailing byte with EPROTO.
    pytest.param(prop(b"Socket-Type", b"PUB") + b"\x00", "truncated or empty", id="stray-byte"),
    pytest.param(b"\x00\x00\x00\x00\x00", "truncated or empty", id="empty-name"),
    pytest.param(b"\x05ab", "truncated", id="truncated-name"),
    pytest.param(b"\x01a\x00\x00", "truncated", id="truncated-value-size"),
    pytest.param(b"\x01a\x00\x00\x00\x05ab", "claims 5 bytes, 2 remain", id="value-overshoot"),
    pytest.param(prop(b"a b", b""), "invalid characters", id="space-in-name"),
    pytest.param(prop("é".encode(), b""), "invalid characters", id="non-ascii-name"),
    pytest.param(b"\x01a\x80\x00\x00\x00", "claims 2147483648", id="value-over-2-31"),
]


class TestGoldenVectors:
    @pytest.mark.parametrize(("raw", "pairs"), GOLDEN)
    def test_parse(self, raw: bytes, pairs: list[tuple[str, bytes]]) -> None:
        meta = parse_properties(raw)
        assert list(meta.items()) == pairs

    @pytest.mark.parametrize(("raw", "pairs"), GOLDEN)
    def test_grammar_parse(self, raw: bytes, pairs: list[tuple[str, bytes]]) -> None:
        assert grammar.parse_properties(raw) == [(n.encode(), v) for n, v in pairs]

    @pytest.mark.parametrize(("raw", "pairs"), GOLDEN)
    def test_encode(self, raw: bytes, pairs: list[tuple[str, bytes]]) -> None:
        assert encode_properties(pairs) == raw
        assert encode_properties(dict(pairs)) == raw

    @pytest.mark.parametrize(("raw", "pairs"), GOLDEN)
    def test_grammar_build(self, raw: bytes, pairs: list[tuple[str, bytes]]) -> None:
        assert grammar.build_properties([(n.encode(), v) for n, v in pairs]) == raw


class TestMalformed:
    @pytest.mark.parametrize(("raw", "message"), MALFORMED)
    def test_refused(self, raw: bytes, message: str) -> None:
        with pytest.raises(HandshakeError, match=message) as info:
            parse_properties(raw)
        assert info.value.reason == b"Malformed metadata"

    @pytest.mark.parametrize(("raw", "message"), MALFORMED)
    def test_grammar_refuses_too(self, raw: bytes, message: str) -> None:
        with pytest.raises(construct.ConstructError):
            grammar.parse_properties(raw)

    def test_size_limit(self) -> None:
        raw = prop(b"X-Big", b"x" * 100)
        assert parse_properties(raw, max_size=len(raw))["X-Big"] == b"x" * 100
        with pytest.raises(HandshakeError, match="exceeds the limit") as info:
            parse_properties(raw, max_size=len(raw) - 1)
        assert info.value.reason == b"Metadata too large"

    def test_default_limit(self) -> None:
        raw = prop(b"X-Big", b"x" * DEFAULT_MAX_METADATA_SIZE)
        with pytest.raises(HandshakeError, match="exceeds the limit"):
            parse_properties(raw)


class TestMetadataMapping:
    def test_names_are_case_insensitive(self) -> None:
        # RFC 37: "The case (upper or lower) of names SHALL NOT be significant."
        meta = parse_properties(prop(b"socket-TYPE", b"PUB"))
        assert meta["Socket-Type"] == b"PUB"
        assert meta["SOCKET-TYPE"] == b"PUB"
        assert "socket-type" in meta
        assert meta.get("Identity") is None
        with pytest.raises(KeyError):
            meta["Identity"]

    def test_iteration_keeps_wire_spelling_and_order(self) -> None:
        meta = Metadata([("b-Name", b"1"), ("A", b"2")])
        assert list(meta) == ["b-Name", "A"]
        assert len(meta) == 2

    def test_duplicate_names_last_one_wins(self) -> None:
        meta = parse_properties(prop(b"X-A", b"1") + prop(b"x-a", b"2"))
        assert list(meta.items()) == [("x-a", b"2")]
        assert meta["X-A"] == b"2"

    def test_equality_and_hash(self) -> None:
        a = Metadata({"X-A": b"1"})
        assert a == {"X-A": b"1"}
        assert a == Metadata([("X-A", b"1")])
        assert a != {"X-A": b"2"}
        assert hash(a) == hash(Metadata({"X-A": b"1"}))
        assert (a == 42) is False
        assert "X-A" in repr(a)

    def test_contains_non_str(self) -> None:
        assert b"X-A" not in Metadata({"X-A": b"1"})

    def test_empty(self) -> None:
        assert len(Metadata()) == 0


class TestEncodingValidation:
    def test_valid_name(self) -> None:
        assert check_property_name("Socket-Type") == b"Socket-Type"
        assert check_property_name("a" * 255) == b"a" * 255

    @pytest.mark.parametrize("name", ["", "a" * 256, "has space", "é", "nul\x00", "x/y"])
    def test_invalid_names(self, name: str) -> None:
        with pytest.raises(ValueError, match="invalid property name"):
            check_property_name(name)
        with pytest.raises(ValueError, match="invalid property name"):
            encode_properties([(name, b"")])

    def test_str_value_is_a_type_error(self) -> None:
        with pytest.raises(TypeError, match="must be bytes"):
            encode_properties([("X-A", "text")])  # type: ignore[list-item]

    @pytest.mark.parametrize("kind", [bytearray, memoryview])
    def test_bytes_like_values(self, kind: type) -> None:
        assert encode_properties([("X-A", kind(b"v"))]) == prop(b"X-A", b"v")


# --------------------------------------------------------------------------- properties

names = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+", min_size=1, max_size=255
)
property_lists = st.lists(
    st.tuples(names, st.binary(max_size=300)),
    max_size=6,
    unique_by=lambda p: p[0].lower(),
)


@settings(max_examples=200, deadline=None)
@given(property_lists)
def test_round_trip(pairs: list[tuple[str, bytes]]) -> None:
    raw = encode_properties(pairs)
    assert list(parse_properties(raw).items()) == pairs


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_only_raises_handshake_errors(raw: bytes) -> None:
    try:
        meta = parse_properties(raw)
    except HandshakeError:
        with pytest.raises(construct.ConstructError):
            grammar.parse_properties(raw)
    else:
        # Whatever we accept, the grammar reads the same way (duplicates collapse in
        # the mapping, so compare the last value of each name).
        expected = {n.decode().lower(): v for n, v in grammar.parse_properties(raw)}
        assert {n.lower(): v for n, v in meta.items()} == expected
