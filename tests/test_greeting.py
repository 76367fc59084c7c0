"""The 64-byte greeting (zmtp.protocol.greeting), RFC 23/37 "Greeting" and "Version Negotiation".

Golden vectors are checked in both directions against the hand-written code and the
construct grammar.  The libzmq vectors were observed on the wire from libzmq 4.3.5
(specs/libzmq-behaviour.md §1.2, re-probed for this suite).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zmtp.protocol.errors import GreetingError, ProtocolError, VersionError
from zmtp.protocol.greeting import (
    GREETING_LEN,
    SIGNATURE_LEN,
    Greeting,
    GreetingParser,
    build_greeting,
    greeting_head,
    greeting_tail,
)
from zmtp.tools import grammar

#: The three pieces libzmq 4.3.5 sends, each after the peer's previous piece arrived.
LIBZMQ_SIGNATURE = bytes.fromhex("ff 00 00 00 00 00 00 00 01 7f")
LIBZMQ_MAJOR = b"\x03"
LIBZMQ_REST = b"\x01" + b"NULL".ljust(20, b"\x00") + b"\x00" + bytes(31)


def greeting_bytes(
    mechanism: bytes = b"NULL",
    *,
    padding: bytes = bytes(8),
    major: int = 3,
    minor: int = 1,
    as_server: bool = False,
) -> bytes:
    """Spelled out byte by byte, independently of both codecs."""
    return (
        b"\xff"
        + padding
        + b"\x7f"
        + bytes((major, minor))
        + mechanism.ljust(20, b"\x00")
        + bytes((as_server,))
        + bytes(31)
    )


# (wire bytes, the Greeting they parse to)
GOLDEN = [
    pytest.param(
        LIBZMQ_SIGNATURE + LIBZMQ_MAJOR + LIBZMQ_REST,
        Greeting(3, 1, b"NULL", False, padding=bytes.fromhex("0000000000000001")),
        id="libzmq-null",
    ),
    # [P] ZMQ_IDENTITY=b"abc": libzmq puts identity length + 1 in the padding.
    pytest.param(
        greeting_bytes(padding=(4).to_bytes(8, "big")),
        Greeting(3, 1, b"NULL", False, padding=(4).to_bytes(8, "big")),
        id="libzmq-identity-abc",
    ),
    # [P] libzmq sends as-server 0 even as a PLAIN or CURVE server.
    pytest.param(
        greeting_bytes(b"PLAIN", padding=(1).to_bytes(8, "big")),
        Greeting(3, 1, b"PLAIN", False, padding=(1).to_bytes(8, "big")),
        id="libzmq-plain-server",
    ),
    pytest.param(greeting_bytes(), Greeting(3, 1, b"NULL", False), id="ours-null"),
    pytest.param(
        greeting_bytes(minor=0), Greeting(3, 0, b"NULL", False), id="rfc23-worked-example"
    ),
    pytest.param(
        greeting_bytes(b"CURVE", as_server=True),
        Greeting(3, 1, b"CURVE", True),
        id="rfc-curve-server",
    ),
    pytest.param(
        greeting_bytes(b"X-EXPERIMENT_2", major=4, minor=7),
        Greeting(4, 7, b"X-EXPERIMENT_2", False),
        id="future-version",
    ),
]


def from_grammar(parsed: Any) -> Greeting:
    return Greeting(
        parsed.major, parsed.minor, parsed.mechanism, parsed.as_server, padding=parsed.padding
    )


class TestGoldenVectors:
    @pytest.mark.parametrize(("raw", "expected"), GOLDEN)
    def test_parse(self, raw: bytes, expected: Greeting) -> None:
        assert Greeting.parse(raw) == expected

    @pytest.mark.parametrize(("raw", "expected"), GOLDEN)
    def test_grammar_parse(self, raw: bytes, expected: Greeting) -> None:
        assert from_grammar(grammar.parse_greeting(raw)) == expected

    @pytest.mark.parametrize(("raw", "expected"), GOLDEN)
    def test_grammar_build(self, raw: bytes, expected: Greeting) -> None:
        built = grammar.build_greeting(
            expected.mechanism,
            major=expected.major,
            minor=expected.minor,
            as_server=expected.as_server,
            padding=expected.padding,
        )
        assert built == raw

    @pytest.mark.parametrize(("raw", "expected"), GOLDEN)
    def test_build(self, raw: bytes, expected: Greeting) -> None:
        # Our encoder always sends zero padding (RFC 23: SHOULD be zero when sending a
        # full greeting), so compare with the padding zeroed.
        ours = greeting_head(expected.major) + greeting_tail(
            expected.mechanism, as_server=expected.as_server, minor=expected.minor
        )
        assert ours == raw[:1] + bytes(8) + raw[9:]

    @pytest.mark.parametrize(("raw", "expected"), GOLDEN)
    def test_parser_in_libzmq_stages(self, raw: bytes, expected: Greeting) -> None:
        parser = GreetingParser()
        assert parser.feed(raw[:SIGNATURE_LEN]) == b""
        assert (parser.major, parser.greeting) == (None, None)
        assert parser.feed(raw[SIGNATURE_LEN : SIGNATURE_LEN + 1]) == b""
        assert parser.major == expected.major
        assert parser.greeting is None
        assert parser.received == 11
        assert parser.feed(raw[11:]) == b""
        assert parser.greeting == expected
        assert parser.received == GREETING_LEN

    def test_our_greeting(self) -> None:
        assert build_greeting() == greeting_bytes()
        assert build_greeting(b"PLAIN", as_server=True) == greeting_bytes(b"PLAIN", as_server=True)
        assert greeting_head() == bytes.fromhex("ff 00 00 00 00 00 00 00 00 7f 03")
        assert len(greeting_tail(b"NULL")) == GREETING_LEN - 11

    def test_version_property(self) -> None:
        assert Greeting(3, 0, b"NULL", False).version == (3, 0)


class TestParser:
    def test_bytes_after_the_greeting_are_returned(self) -> None:
        parser = GreetingParser()
        assert parser.feed(greeting_bytes() + b"\x04\x05") == b"\x04\x05"
        assert parser.greeting is not None
        # Once complete, everything passes through.
        assert parser.feed(b"more") == b"more"

    def test_bad_first_byte_fails_on_the_first_byte(self) -> None:
        # A ZMTP 1.0 peer starts with a short identity length; anything else is not ZMTP.
        with pytest.raises(GreetingError, match="first byte 0x01") as info:
            GreetingParser().feed(b"\x01")
        assert info.value.reason == b"Invalid greeting"

    def test_signature_end_without_bit_zero_is_zmtp_1_0(self) -> None:
        parser = GreetingParser()
        parser.feed(b"\xff" + bytes(8))
        with pytest.raises(GreetingError, match="bit 0 clear"):
            parser.feed(b"\x7e")

    def test_signature_end_only_bit_zero_matters(self) -> None:
        # libzmq checks bit 0 only; the grammar (RFC) insists on 7F.
        raw = b"\xff" + bytes(8) + b"\x01" + greeting_bytes()[10:]
        assert Greeting.parse(raw).mechanism == b"NULL"

    @pytest.mark.parametrize(("major", "name"), [(0, "ZMTP 1.0"), (1, "ZMTP 2.0"), (2, "pre-3.0")])
    def test_old_versions_are_refused_at_byte_ten(self, major: int, name: str) -> None:
        parser = GreetingParser()
        with pytest.raises(VersionError, match=name) as info:
            parser.feed(LIBZMQ_SIGNATURE + bytes((major,)))
        assert info.value.major == major
        assert f"version byte {major}" in str(info.value)
        assert info.value.reason == b"Unsupported ZMTP version"

    @pytest.mark.parametrize("major", [3, 4, 255])
    def test_new_versions_are_accepted(self, major: int) -> None:
        parser = GreetingParser()
        parser.feed(greeting_bytes(major=major, minor=9))
        assert parser.greeting is not None
        assert parser.greeting.version == (major, 9)

    def test_as_server_is_reported_not_validated(self) -> None:
        raw = greeting_bytes()
        raw = raw[:32] + b"\x07" + raw[33:]
        assert Greeting.parse(raw).as_server is True

    def test_parse_requires_64_bytes(self) -> None:
        with pytest.raises(GreetingError, match="64 bytes"):
            Greeting.parse(greeting_bytes()[:63])

    @pytest.mark.parametrize("name", [b"", b"null", b"A" * 21, b"NU LL", b"N\x00"])
    def test_invalid_mechanism_names_are_not_sent(self, name: bytes) -> None:
        with pytest.raises(ValueError, match="mechanism name"):
            greeting_tail(name)


# --------------------------------------------------------------------------- properties

mechanisms = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=20).map(
    str.encode
)


@settings(max_examples=200, deadline=None)
@given(
    mechanism=mechanisms,
    padding=st.binary(min_size=8, max_size=8),
    major=st.integers(3, 255),
    minor=st.integers(0, 255),
    as_server=st.booleans(),
    cuts=st.lists(st.integers(0, 64), max_size=5),
)
def test_any_valid_greeting_in_any_split(
    *,
    mechanism: bytes,
    padding: bytes,
    major: int,
    minor: int,
    as_server: bool,
    cuts: list[int],
) -> None:
    raw = grammar.build_greeting(
        mechanism, major=major, minor=minor, as_server=as_server, padding=padding
    )
    # The padding is never validated (RFC 23): any value is fine.
    expected = Greeting(major, minor, mechanism, as_server, padding=padding)
    assert from_grammar(grammar.parse_greeting(raw)) == expected
    parser = GreetingParser()
    points = sorted({0, 64, *cuts})
    for a, b in itertools.pairwise(points):
        assert parser.feed(raw[a:b]) == b""
    assert parser.greeting == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=30), max_size=6), st.booleans())
def test_garbage_only_raises_greeting_errors(chunks: list[bytes], valid_start: bool) -> None:
    parser = GreetingParser()
    if valid_start:
        chunks = [LIBZMQ_SIGNATURE, *chunks]
    fed = 0
    try:
        for chunk in chunks:
            fed += len(chunk)
            rest = parser.feed(chunk)
            # Never holds more than the greeting, never loses or invents bytes.
            assert parser.received == min(fed, GREETING_LEN)
            if parser.greeting is None:
                assert rest == b""
    except ProtocolError as exc:
        assert isinstance(exc, GreetingError)
