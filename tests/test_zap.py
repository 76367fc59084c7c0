"""The sans-IO ZAP codec (zmtp.protocol.zap, RFC 27): golden vectors both ways, libzmq's
checks on a reply and their monitor codes, the request's checks, the PLAIN password kept
out of sight, round trips and garbage.

The same codec against libzmq itself is in ``interop/test_zap_interop.py``.
"""

from __future__ import annotations

import pickle
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zmtp.protocol.metadata import Metadata, encode_properties
from zmtp.protocol.zap import (
    ZAP_ENDPOINT,
    ZAP_ERROR_CODES,
    ZAP_VERSION,
    ZapError,
    ZapReply,
    ZapRequest,
    encode_reply,
    encode_request,
    parse_reply,
    parse_reply_metadata,
    parse_request,
)

CURVE_KEY = bytes(range(32))
PASSWORD = b"hunter2-very-secret"

# Requests as libzmq 4.3.5 sends them (specs/libzmq-behaviour.md §4.3): request id "1",
# domain "" when none is set, the peer's address as text, the *server's* routing id.
GOLDEN_REQUESTS: list[tuple[str, ZapRequest, list[bytes]]] = [
    (
        "plain",
        ZapRequest(b"", b"127.0.0.1", b"SRV", b"PLAIN", (b"u", b"p")),
        [b"1.0", b"1", b"", b"127.0.0.1", b"SRV", b"PLAIN", b"u", b"p"],
    ),
    (
        "curve",
        ZapRequest(b"global", b"::1", b"", b"CURVE", (CURVE_KEY,)),
        [b"1.0", b"1", b"global", b"::1", b"", b"CURVE", CURVE_KEY],
    ),
    (
        "null",
        ZapRequest(b"test", b"192.168.55.1", b"BOB", b"NULL", (), request_id=b"0001"),
        [b"1.0", b"0001", b"test", b"192.168.55.1", b"BOB", b"NULL"],
    ),
]

# RFC 27's example reply, and a refusal as pyzmq's authenticator sends it.
GOLDEN_REPLIES: list[tuple[str, ZapReply, list[bytes]]] = [
    (
        "ok",
        ZapReply(b"0001", b"200", b"OK", b"joe"),
        [b"1.0", b"0001", b"200", b"OK", b"joe", b""],
    ),
    (
        "refused",
        ZapReply(b"1", b"400", b"Invalid password"),
        [b"1.0", b"1", b"400", b"Invalid password", b"", b""],
    ),
    (
        "metadata",
        ZapReply(b"1", b"200", b"OK", b"u", encode_properties([("X-Role", b"admin")])),
        [b"1.0", b"1", b"200", b"OK", b"u", b"\x06X-Role\x00\x00\x00\x05admin"],
    ),
]


def test_constants() -> None:
    assert ZAP_ENDPOINT == "inproc://zeromq.zap.01"
    assert ZAP_VERSION == b"1.0"
    # zmq.h's numbers, for monitor events.
    assert ZAP_ERROR_CODES["ZAP_UNSPECIFIED"] == 0x20000000
    assert ZAP_ERROR_CODES["ZAP_INVALID_METADATA"] == 0x20000005


class TestGoldenVectors:
    @pytest.mark.parametrize(
        ("req", "frames"), [g[1:] for g in GOLDEN_REQUESTS], ids=[g[0] for g in GOLDEN_REQUESTS]
    )
    def test_request_both_ways(self, req: ZapRequest, frames: list[bytes]) -> None:
        assert encode_request(req) == frames
        assert parse_request(frames) == req

    @pytest.mark.parametrize(
        ("reply", "frames"), [g[1:] for g in GOLDEN_REPLIES], ids=[g[0] for g in GOLDEN_REPLIES]
    )
    def test_reply_both_ways(self, reply: ZapReply, frames: list[bytes]) -> None:
        assert encode_reply(reply) == frames
        assert parse_reply(frames) == reply
        assert parse_reply(frames, request_id=reply.request_id) == reply

    def test_defaults_are_libzmqs(self) -> None:
        req = ZapRequest(b"", b"127.0.0.1", b"", b"NULL", ())
        assert (req.request_id, req.version) == (b"1", b"1.0")
        reply = ZapReply(b"1", b"200")
        assert (reply.status_text, reply.user_id, reply.metadata, reply.version) == (
            b"",
            b"",
            b"",
            b"1.0",
        )

    def test_frames_are_normalised_to_bytes(self) -> None:
        req = ZapRequest(bytearray(b"d"), memoryview(b"a"), b"i", b"PLAIN", [bytearray(b"u"), b"p"])  # type: ignore[arg-type]
        assert req == ZapRequest(b"d", b"a", b"i", b"PLAIN", (b"u", b"p"))
        assert all(type(f) is bytes for f in encode_request(req))
        assert parse_request([bytearray(f) for f in encode_request(req)]) == req  # type: ignore[misc]

    def test_bad_types(self) -> None:
        with pytest.raises(TypeError, match="domain"):
            ZapRequest("d", b"a", b"i", b"NULL", ())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="sequence of frames"):
            ZapRequest(b"d", b"a", b"i", b"CURVE", CURVE_KEY)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="status code"):
            ZapReply(b"1", 200)  # type: ignore[arg-type]


class TestReplyChecks:
    """libzmq's zap_client.cpp checks, in its order, each with its monitor code."""

    GOOD: ClassVar[list[bytes]] = [b"1.0", b"1", b"200", b"OK", b"user", b""]

    @pytest.mark.parametrize(
        ("frames", "code"),
        [
            ([], "ZAP_MALFORMED_REPLY"),
            (GOOD[:5], "ZAP_MALFORMED_REPLY"),
            ([*GOOD, b""], "ZAP_MALFORMED_REPLY"),
            ([b"1.1", *GOOD[1:]], "ZAP_BAD_VERSION"),
            ([b"1.0\x00", *GOOD[1:]], "ZAP_BAD_VERSION"),
            ([b"", *GOOD[1:]], "ZAP_BAD_VERSION"),
            ([*GOOD[:2], b"201", *GOOD[3:]], "ZAP_INVALID_STATUS_CODE"),
            ([*GOOD[:2], b"600", *GOOD[3:]], "ZAP_INVALID_STATUS_CODE"),
            ([*GOOD[:2], b"100", *GOOD[3:]], "ZAP_INVALID_STATUS_CODE"),
            ([*GOOD[:2], b"20", *GOOD[3:]], "ZAP_INVALID_STATUS_CODE"),
            ([*GOOD[:2], b"2000", *GOOD[3:]], "ZAP_INVALID_STATUS_CODE"),
            ([*GOOD[:2], b"", *GOOD[3:]], "ZAP_INVALID_STATUS_CODE"),
            ([*GOOD[:5], b"\x01"], "ZAP_INVALID_METADATA"),
            ([*GOOD[:5], b"\x06X-Role\x00\x00\x00\x09admin"], "ZAP_INVALID_METADATA"),
            ([*GOOD[:5], b"\x03a b\x00\x00\x00\x00"], "ZAP_INVALID_METADATA"),
        ],
    )
    def test_bad_reply(self, frames: list[bytes], code: str) -> None:
        with pytest.raises(ZapError) as info:
            parse_reply(frames)
        assert info.value.code == code
        assert code in ZAP_ERROR_CODES
        assert len(info.value.reason) <= 255

    @pytest.mark.parametrize("status", [b"200", b"300", b"400", b"500"])
    def test_every_status_libzmq_knows(self, status: bytes) -> None:
        reply = parse_reply([b"1.0", b"1", status, b"", b"", b""])
        assert reply.status_code == status
        assert reply.ok is (status == b"200")

    def test_request_id_is_checked_only_when_given(self) -> None:
        frames = [b"1.0", b"7", b"200", b"", b"", b""]
        assert parse_reply(frames).request_id == b"7"
        with pytest.raises(ZapError) as info:
            parse_reply(frames, request_id=b"1")
        assert info.value.code == "ZAP_BAD_REQUEST_ID"

    def test_order_of_checks_is_libzmqs(self) -> None:
        # Everything wrong at once: the frame count is reported first, then the version,
        # then the request id, then the status.
        with pytest.raises(ZapError, match="frames") as info:
            parse_reply([b"2.0", b"9", b"999"], request_id=b"1")
        assert info.value.code == "ZAP_MALFORMED_REPLY"
        with pytest.raises(ZapError) as info:
            parse_reply([b"2.0", b"9", b"999", b"", b"", b"\x01"], request_id=b"1")
        assert info.value.code == "ZAP_BAD_VERSION"
        with pytest.raises(ZapError) as info:
            parse_reply([b"1.0", b"9", b"999", b"", b"", b"\x01"], request_id=b"1")
        assert info.value.code == "ZAP_BAD_REQUEST_ID"
        with pytest.raises(ZapError) as info:
            parse_reply([b"1.0", b"1", b"999", b"", b"", b"\x01"], request_id=b"1")
        assert info.value.code == "ZAP_INVALID_STATUS_CODE"

    def test_metadata(self) -> None:
        meta = encode_properties([("X-Role", b"admin"), ("X-Team", b"")])
        reply = parse_reply([b"1.0", b"1", b"200", b"OK", b"u", meta])
        props = parse_reply_metadata(reply)
        assert isinstance(props, Metadata)
        assert dict(props) == {"X-Role": b"admin", "X-Team": b""}
        assert props["x-role"] == b"admin"
        assert parse_reply_metadata(ZapReply(b"1", b"200")) == Metadata()
        with pytest.raises(ZapError) as info:
            parse_reply_metadata(ZapReply(b"1", b"200", metadata=b"\x00"))
        assert info.value.code == "ZAP_INVALID_METADATA"


class TestRequestChecks:
    HEAD: ClassVar[list[bytes]] = [b"1.0", b"1", b"", b"10.0.0.1", b""]

    @pytest.mark.parametrize(
        ("frames", "code"),
        [
            ([], "ZAP_UNSPECIFIED"),
            ([b"1.0", b"1", b"", b"10.0.0.1", b""], "ZAP_UNSPECIFIED"),
            ([b"1.1", b"1", b"", b"10.0.0.1", b"", b"NULL"], "ZAP_BAD_VERSION"),
            ([*HEAD, b"NULL", b"x"], "ZAP_UNSPECIFIED"),
            ([*HEAD, b"PLAIN", b"u"], "ZAP_UNSPECIFIED"),
            ([*HEAD, b"PLAIN", b"u", PASSWORD, b"x"], "ZAP_UNSPECIFIED"),
            ([*HEAD, b"CURVE"], "ZAP_UNSPECIFIED"),
            ([*HEAD, b"CURVE", CURVE_KEY, CURVE_KEY], "ZAP_UNSPECIFIED"),
            ([*HEAD, b"CURVE", CURVE_KEY[:31]], "ZAP_UNSPECIFIED"),
            ([*HEAD, b"CURVE", b"x" * 40], "ZAP_UNSPECIFIED"),  # Z85 is not the wire form
        ],
    )
    def test_bad_request(self, frames: list[bytes], code: str) -> None:
        with pytest.raises(ZapError) as info:
            parse_request(frames)
        assert info.value.code == code
        assert PASSWORD not in str(info.value).encode()

    @pytest.mark.parametrize("count", [0, 1, 3])
    def test_other_mechanisms_take_any_credentials(self, count: int) -> None:
        frames = [*self.HEAD, b"GSSAPI", *([b"c"] * count)]
        assert parse_request(frames).credentials == (b"c",) * count

    def test_mechanism_names_are_exact(self) -> None:
        # "plain" is not PLAIN: an unknown mechanism, any credentials.
        assert parse_request([*self.HEAD, b"plain", b"u"]).mechanism == b"plain"


class TestPasswordStaysHidden:
    def test_repr(self) -> None:
        req = ZapRequest(b"", b"127.0.0.1", b"", b"PLAIN", (b"admin", PASSWORD))
        for text in (repr(req), str(req), repr([req]), f"{req}"):
            assert PASSWORD.decode() not in text
            assert "admin" in text
            assert "password hidden" in text

    def test_other_mechanisms_show_their_credentials(self) -> None:
        req = ZapRequest(b"", b"127.0.0.1", b"", b"CURVE", (CURVE_KEY,))
        assert repr(CURVE_KEY) in repr(req)
        req = ZapRequest(b"", b"127.0.0.1", b"", b"X", (b"a", b"b"))
        assert "b'b'" in repr(req)


def test_zap_error_attributes_and_pickle() -> None:
    exc = ZapError("bad", code="ZAP_BAD_VERSION", reason=b"Bad ZAP version")
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is ZapError
    assert (again.code, again.reason, str(again)) == (exc.code, exc.reason, str(exc))
    with pytest.raises(ValueError, match="unknown ZAP error code"):
        ZapError("bad", code="ZAP_NONSENSE")


# --------------------------------------------------------------------------- properties

frames_st = st.binary(max_size=40)
mechanisms = st.sampled_from([b"NULL", b"PLAIN", b"CURVE", b"GSSAPI", b"X-OTHER", b""])


@st.composite
def requests(draw: st.DrawFn) -> ZapRequest:
    mechanism = draw(mechanisms)
    if mechanism == b"NULL":
        creds: list[bytes] = []
    elif mechanism == b"PLAIN":
        creds = [draw(frames_st), draw(frames_st)]
    elif mechanism == b"CURVE":
        creds = [draw(st.binary(min_size=32, max_size=32))]
    else:
        creds = draw(st.lists(frames_st, max_size=4))
    return ZapRequest(
        domain=draw(frames_st),
        address=draw(frames_st),
        identity=draw(frames_st),
        mechanism=mechanism,
        credentials=tuple(creds),
        request_id=draw(frames_st),
    )


properties = st.lists(
    st.tuples(
        st.text("abcXYZ019-_.+", min_size=1, max_size=12),
        st.binary(max_size=20),
    ),
    max_size=3,
)


@st.composite
def replies(draw: st.DrawFn) -> ZapReply:
    return ZapReply(
        request_id=draw(frames_st),
        status_code=draw(st.sampled_from([b"200", b"300", b"400", b"500"])),
        status_text=draw(frames_st),
        user_id=draw(frames_st),
        metadata=encode_properties(draw(properties)),
    )


@given(requests())
def test_request_round_trip(req: ZapRequest) -> None:
    assert parse_request(encode_request(req)) == req


@given(replies())
def test_reply_round_trip(reply: ZapReply) -> None:
    frames = encode_reply(reply)
    assert parse_reply(frames) == reply
    assert parse_reply(frames, request_id=reply.request_id) == reply


garbage = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b"1.0", b"NULL", b"PLAIN", b"CURVE", b"200", b"400", b"1"]),
    ),
    max_size=10,
)


@settings(max_examples=500)
@given(garbage, st.one_of(st.none(), st.binary(max_size=3)))
def test_garbage_raises_only_zap_errors(frames: list[bytes], request_id: bytes | None) -> None:
    for parse in (parse_request, lambda f: parse_reply(f, request_id=request_id)):
        try:
            parse(frames)
        except ZapError as exc:
            assert exc.code in ZAP_ERROR_CODES
