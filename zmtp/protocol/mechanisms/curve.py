"""The CURVE mechanism (RFC 25 for ZMTP, RFC 26 CurveZMQ), as libzmq 4.3.5 speaks it.

Keys: C and S are the client's and the server's long-term public keys (c and s the
secret halves), C' and S' the key pairs each side makes for one connection.
``Box[X](A->B)`` is X sealed with A's secret and B's public key (``nacl.public.Box``).

Handshake (command bodies, sizes include the name; specs/libzmq-behaviour.md §4.2)::

    C: HELLO     200  version 1.0, 72 zero octets, C', short nonce,
                      Box[64 zeros](C'->S)                        "CurveZMQHELLO---"
    S: WELCOME   168  long nonce, Box[S' + cookie](S->C')         "WELCOME-"
                      cookie = long nonce + SecretBox[C' + s'](K) "COOKIE--"
    C: INITIATE  257+ cookie, short nonce,
                      Box[C + vouch + metadata](C'->S')           "CurveZMQINITIATE"
                      vouch = long nonce + Box[C' + S](C->S')     "VOUCH---"
    S: READY     30+  short nonce, Box[metadata](S'->C')          "CurveZMQREADY---"
    either: MESSAGE  33+  short nonce, Box[flags + data](C'<->S')   "CurveZMQMESSAGEC"/"...S"

Theory of operation
-------------------
:class:`CurveClient` and :class:`CurveServer` are :class:`~.base.Mechanism` objects:
the connection machine calls ``start`` after the greetings and feeds each handshake
command to ``receive_command``, sending whatever they return, until ``status`` is
``READY``.  From then on the same object is the connection's traffic codec: every part
of every message, and every command (PING, SUBSCRIBE, ...), becomes one MESSAGE whose
box starts with libzmq's flags octet (``01`` MORE, ``02`` COMMAND; RFC 26 reserves bit
1, libzmq uses it), and travels as an ordinary data frame without MORE
(:meth:`encode_message`, :meth:`encode_command`); :meth:`decode_frame` turns a received
frame body back into one :class:`CurveFrame`.

Short nonces are counters from 1, one per direction, shared by the handshake and the
traffic (the client's HELLO is 1, INITIATE 2, its first MESSAGE 3; the server's READY
is 1).  A receiver insists that each is larger than the last it accepted (RFC 26;
libzmq does not demand +1, nor do we), so a replayed or reordered command is a
:class:`~zmtp.protocol.errors.NonceError`.  A box that does not open is a
:class:`~zmtp.protocol.errors.DecryptionFailed`; a command of the wrong size or shape a
:class:`~zmtp.protocol.errors.HandshakeError`; a refused client key an
:class:`~zmtp.protocol.errors.AuthenticationFailed`.  Nothing inside a box is looked at
before the box has opened.

The shared key of C' and S' is computed once (``Box`` precomputes it) and used for
INITIATE, READY and every MESSAGE.  The server keeps no transient secret after WELCOME:
s' lives only in the cookie, sealed with a cookie key of this connection, and the
cookie key is forgotten as soon as an INITIATE has been checked (RFC 26 §WELCOME).

Authorising the client (ZAP, RFC 27, comes later) is a callback: ``authorize(C)``
returns True (accept), False (refuse: AuthenticationFailed with reason ``400``, which
the connection sends as ERROR) or None (no authenticator: accept any key, which is what
libzmq does when no ZAP handler is installed).
"""

from __future__ import annotations

import hmac
import os
import struct
import sys
from array import array
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from operator import gt
from typing import Any, NamedTuple

try:
    # PyNaCl's own cffi module (every PyNaCl 1.x wheel has it): libsodium's functions
    # without the per-call wrapper of nacl.bindings, which allocates, checks and
    # copies (3.5 us of a 1 us seal for a small part), so that whole batches are
    # sealed into preallocated buffers and opened without per-part objects.
    from nacl._sodium import ffi as _ffi  # type: ignore[import-not-found]
    from nacl._sodium import lib as _sodium
    from nacl.bindings import crypto_box_easy_afternm as _seal_after
    from nacl.exceptions import CryptoError
    from nacl.public import Box, PrivateKey, PublicKey
    from nacl.secret import SecretBox
except ImportError as exc:  # pragma: no cover - the test extra installs it
    raise ImportError("the CURVE mechanism needs PyNaCl: pip install 'zmtp[curve]'") from exc

from .._buffers import BytesLike
from .._reuse import ReusePool
from ..commands import ERROR, READY, Command, encode_command, parse_error
from ..errors import (
    AuthenticationFailed,
    AuthenticationUnavailable,
    CurveMessageError,
    DecryptionFailed,
    HandshakeError,
    LocalProtocolError,
    NonceError,
    PeerError,
    ProtocolError,
)
from ..framing import RUN_MIN, _as_bytes_like, encode_frame, run_records
from ..keys import KEY_SIZE, normalize_key
from ..metadata import DEFAULT_MAX_METADATA_SIZE, Metadata, encode_properties, parse_properties
from .base import Mechanism, MechanismStatus, PartAllocator

__all__ = [
    "COMMAND",
    "MORE",
    "CurveClient",
    "CurveFrame",
    "CurveServer",
]

HELLO = b"HELLO"
WELCOME = b"WELCOME"
INITIATE = b"INITIATE"
MESSAGE = b"MESSAGE"

HELLO_PREFIX = b"CurveZMQHELLO---"
WELCOME_PREFIX = b"WELCOME-"
COOKIE_PREFIX = b"COOKIE--"
INITIATE_PREFIX = b"CurveZMQINITIATE"
VOUCH_PREFIX = b"VOUCH---"
READY_PREFIX = b"CurveZMQREADY---"
MESSAGE_PREFIX_CLIENT = b"CurveZMQMESSAGEC"
MESSAGE_PREFIX_SERVER = b"CurveZMQMESSAGES"

#: The flags octet inside a MESSAGE box (libzmq's msg_t flags, not the frame's).
MORE = 0x01
COMMAND = 0x02

_VERSION = b"\x01\x00"
_HELLO_PADDING = bytes(72)
_HELLO_SIGNATURE = bytes(64)
_MAC = 16  # crypto_box_MACBYTES: a box is 16 octets longer than what it holds
_SHORT = 8  # short nonce
_LONG = 16  # long nonce
_COOKIE = _LONG + 2 * KEY_SIZE + _MAC  # 96
_VOUCH_BOX = 2 * KEY_SIZE + _MAC  # 80
# Command data sizes, after the name (the RFC's sizes minus 1 + len(name)).
_HELLO_DATA = 2 + 72 + KEY_SIZE + _SHORT + len(_HELLO_SIGNATURE) + _MAC  # 194
_WELCOME_DATA = _LONG + KEY_SIZE + _COOKIE + _MAC  # 160
_INITIATE_MIN_DATA = _COOKIE + _SHORT + KEY_SIZE + _LONG + _VOUCH_BOX + _MAC  # 248
_READY_MIN_DATA = _SHORT + _MAC  # 24
_MESSAGE_HEAD = bytes((len(MESSAGE),)) + MESSAGE
#: A MESSAGE frame body: name, short nonce, and a box of at least the flags octet.
_MESSAGE_MIN_BODY = len(_MESSAGE_HEAD) + _SHORT + _MAC + 1  # 33
_MAX_NONCE = (1 << 64) - 1
#: A MESSAGE body's size beyond its payload: name-size, "MESSAGE", short nonce, MAC
#: and the flags octet.
_MESSAGE_OVERHEAD = 1 + 7 + _SHORT + _MAC + 1  # 33
#: Scratch buffers for opening boxes above this size are not kept between calls.
#: (1 MiB and a little: a stream of 1 MiB messages reuses one buffer instead of
#: faulting a fresh one in for each.)
_SCRATCH_KEEP = (1 << 20) + 8192
#: Sealed frames per send buffer (see encode_messages_sized); at least the largest
#: short frame, 257 octets (_seal_small and _seal_run fit every short frame in one).
_SEAL_CHUNK = 64 * 1024
_NO_SCRATCH: Any = _ffi.new("unsigned char[]", 0)
# unpack() gives bytes from a char *: the opened part follows the flags octet.
_NO_SCRATCH_TEXT: Any = _ffi.cast("char *", _NO_SCRATCH) + 1
#: Memory for a buffer holding one large sealed part, not zeroed first: every octet
#: of it is written (frame header, nonce, then the box libsodium seals over the
#: plaintext), and zeroing a MiB first would be a third pass over it, and for a
#: fresh mapping the pass that faults every page in (measured: 1 MiB parts sealed
#: for 1.5 ms of CPU, of which about 0.5 ms was the zeroed allocation and copy).
_raw_alloc: Any = _ffi.new_allocator(should_clear_after_alloc=False)
#: Memory that frames are sealed into (not zeroed first: every octet is written), reused
#: once every chunk sealed into it is gone (:mod:`~zmtp.protocol._reuse`).  Each writer
#: pass seals up to 2 MiB (SEAL_BATCH in zmtp.sockets._engine); fresh buffers for each
#: pass were handed back to the system when freed and faulted in again, page by page,
#: by the next one: 3 to 4 faults per 64 KiB message.  Per thread at most twice a pass,
#: so a pass being written and the next one being sealed both find theirs; at least a
#: seal chunk and a page, so one buffer serves any chunk of small frames and large
#: parts of nearby sizes.
_SEAL_MEMORY = ReusePool(
    lambda size: _raw_alloc("char[]", size), limit=4 * 1024 * 1024, min_size=64 * 1024 + 4096
)


# Per-part headers written by one struct call each (cheaper than building the bytes
# with int.to_bytes and concatenation, then copying them in): frame header, name,
# short nonce, 16 octets where the MAC goes, and the inner flags octet.
_SHORT_HEAD = struct.Struct(">BB8sQ16xB")  # a short frame: flags 00, size octet
_LONG_HEAD = struct.Struct(">BQ8sQ16xB")  # a long frame: flags 02, 8-octet size
#: Parts below this size fit a short frame (body = 33 octets of overhead + part).
_SMALL_PART = 256 - _MESSAGE_OVERHEAD
#: Runs of one-part messages of one size below this are sealed by _seal_run, whose
#: buffers hold one frame at least (_SEAL_CHUNK).
_RUN_SEAL_MAX = 16 * 1024
_SEQUENCES = (list, tuple)
#: For each part size below :data:`_SMALL_PART`, one struct call that writes a short
#: MESSAGE frame whole but for its box: header, name, short nonce, room for the MAC,
#: the inner flags octet and the part itself (laid where its ciphertext goes).  One
#: call instead of a header write and a slice assignment per part.
_SMALL_FRAME = tuple(struct.Struct(f">BB8sQ16xB{n}s").pack_into for n in range(_SMALL_PART))
#: A short nonce as it travels, and in the last 8 octets of the 24-octet box nonce.
_NONCE = struct.Struct(">Q")
#: A MESSAGE body's first 16 octets as two numbers: the name (``07 'MESSAGE'``) and
#: the short nonce, read by one call and compared as numbers.
_NAME_NONCE = struct.Struct(">QQ")
_MESSAGE_NAME = int.from_bytes(_MESSAGE_HEAD, "big")
#: An array("Q") of short nonces read from the wire needs its octets swapped.
_LITTLE = sys.byteorder == "little"
#: open_spans opens a batch of at least RUN_MIN MESSAGE bodies of one size below
#: _RUN_PART (a stream of equal messages) as a run (see _open_run).
_RUN_PART = 16 * 1024
#: Parts this large are opened straight into the bytes delivered when the connection
#: was given a part allocator (use_part_allocator): a copy of the part saved.
_DIRECT_PART = 16 * 1024


def _malformed_message(raw: bytes) -> CurveMessageError:
    if not raw.startswith(_MESSAGE_HEAD):
        name = raw[1 : 1 + raw[0]] if raw else b""
        return CurveMessageError(
            f"expected a CURVE MESSAGE, got a frame starting {name[:16]!r}",
            reason=b"Malformed message",
        )
    return CurveMessageError(
        f"CURVE MESSAGE of {len(raw)} octets, at least {_MESSAGE_MIN_BODY} expected",
        reason=b"Malformed message",
    )


def _bad_box() -> DecryptionFailed:
    return DecryptionFailed(
        "the MESSAGE box does not open: altered, forged or sealed for other keys",
        reason=b"Invalid box",
    )


#: ``authorize(client_public_key) -> True | False | None``.
Authorizer = Callable[[bytes], bool | None]


def _new_transient() -> PrivateKey:
    """A fresh per-connection key pair (a seam for deterministic tests)."""
    return PrivateKey.generate()


def _random(size: int) -> bytes:
    """Random octets for long nonces and the cookie key (a seam for tests)."""
    return os.urandom(size)


def _open(box: Box | SecretBox, ciphertext: bytes, nonce: bytes, what: str) -> bytes:
    try:
        return bytes(box.decrypt(ciphertext, nonce))
    except CryptoError:
        raise DecryptionFailed(
            f"the {what} box does not open: altered, forged or sealed for other keys",
            reason=b"Invalid box",
        ) from None


def _box(secret: PrivateKey, public: bytes, what: str) -> Box:
    """``Box(secret, public)``, refusing a public key of low order (no shared secret)."""
    try:
        return Box(secret, PublicKey(public))
    except CryptoError:
        raise DecryptionFailed(
            f"the {what} is a degenerate Curve25519 point: no shared key",
            reason=b"Invalid key",
        ) from None


def _seal(box: Box | SecretBox, plaintext: bytes, nonce: bytes) -> bytes:
    return bytes(box.encrypt(plaintext, nonce).ciphertext)


def _expect(command: Command, name: bytes, stage: str) -> None:
    if command.name != name:
        raise HandshakeError(
            f"expected {name.decode()} {stage}, got {command.name!r}",
            reason=b"Unexpected command",
        )


def _check_size(data: bytes, name: bytes, size: int, *, exact: bool) -> None:
    ok = len(data) == size if exact else len(data) >= size
    if not ok:
        total = 1 + len(name) + size
        want = f"{total}" if exact else f"at least {total}"
        raise HandshakeError(
            f"malformed {name.decode()}: {1 + len(name) + len(data)} octets, want {want}",
            reason=b"Malformed " + name,
        )


class CurveFrame(NamedTuple):
    """One decrypted MESSAGE: a message part, or a command (PING, SUBSCRIBE, ...)."""

    #: The part, or the whole command body (name-size, name, data) if :attr:`command`.
    data: bytes
    #: More parts of the same message follow.
    more: bool
    #: The payload is a command, not a message part (libzmq's inner flag ``02``).
    command: bool


class _Curve(Mechanism):
    """What both roles share: the short nonces and the MESSAGE codec."""

    name = b"CURVE"
    encrypts = True
    _send_prefix: bytes
    _recv_prefix: bytes

    def __init__(self, *, max_metadata_size: int) -> None:
        super().__init__()
        self.max_metadata_size = max_metadata_size
        #: The precomputed Box of C' and S', set once both are known.
        self._box: Box | None = None
        self._key: bytes | None = None  # its shared key, for the traffic calls
        # For the batch calls: the shared key as cdata, and one 24-octet box nonce
        # per direction (the 16-octet MESSAGE prefix written once, the short nonce
        # rewritten in place per part) as a bytearray and the cdata over it: no
        # nonce object per part, and no argument conversion of bytes per call.
        self._traffic_c: tuple[Any, bytearray, Any, bytearray, Any] | None = None
        self._scratch: Any = _NO_SCRATCH  # where MESSAGE boxes are opened
        self._scratch_text: Any = _NO_SCRATCH_TEXT  # its part, after the flags octet
        self._sent_nonce = 0  # the last short nonce we used
        self._peer_nonce = 0  # the last short nonce we accepted
        self._opened_part: PartAllocator | None = None  # see use_part_allocator

    def use_part_allocator(self, allocate: PartAllocator | None) -> None:
        """Open parts of :data:`_DIRECT_PART` octets or more straight into the
        ``bytes`` that ``allocate`` gives, instead of into the scratch buffer and then
        a copy (:data:`~zmtp.protocol.mechanisms.base.PartAllocator`)."""
        self._opened_part = allocate

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status.value}>"

    # ------------------------------------------------------------------ nonces

    def _next_nonce(self) -> bytes:
        if self._sent_nonce >= _MAX_NONCE:
            raise LocalProtocolError("CURVE short nonces exhausted: 2^64 - 1 commands sent")
        self._sent_nonce += 1
        return self._sent_nonce.to_bytes(_SHORT, "big")

    def _check_nonce(self, raw: bytes, what: str) -> int:
        """The short nonce's value if it is above the last accepted one (not yet recorded)."""
        value = int.from_bytes(raw, "big")
        if value <= self._peer_nonce:
            raise NonceError(
                f"{what} short nonce {value} does not follow {self._peer_nonce}: "
                "replayed or reordered",
                reason=b"Invalid nonce",
            )
        return value

    # ------------------------------------------------------------------ traffic

    def _traffic_key(self) -> bytes:
        if self.status is not MechanismStatus.READY or self._box is None:
            raise LocalProtocolError("CURVE traffic before the handshake completed")
        key = self._key
        if key is None:
            # The Box's precomputed shared key (crypto_box_beforenm), used directly by
            # the *_afternm calls: no Box/EncryptedMessage objects per part.
            key = self._key = self._box.shared_key()
        return key

    def _traffic_cdata(self) -> tuple[Any, bytearray, Any, bytearray, Any]:
        """``(key, send nonce, its cdata, receive nonce, its cdata)`` for the batch
        calls (:meth:`encode_messages_sized`, :meth:`open_spans`).

        The nonce buffers are scratch: each call writes a part's short nonce into
        them just before the libsodium call that reads it, so nothing carries over
        between parts or calls.
        """
        cached = self._traffic_c
        if cached is None:
            key = _ffi.new("unsigned char[32]", self._traffic_key())
            send = bytearray(self._send_prefix + bytes(_SHORT))
            recv = bytearray(self._recv_prefix + bytes(_SHORT))
            cached = (key, send, _ffi.from_buffer(send), recv, _ffi.from_buffer(recv))
            self._traffic_c = cached
        elif self.status is not MechanismStatus.READY:
            raise LocalProtocolError("CURVE traffic before the handshake completed")
        return cached

    def encode_part(self, data: bytes, *, more: bool = False, command: bool = False) -> bytes:
        """The body of one MESSAGE (``07 'MESSAGE'``, nonce, box) carrying ``data``.

        Frame it as a data frame without MORE (:meth:`encode_frame` does), as libzmq
        does whatever the part's flags: those travel inside the box.

        Raises:
            LocalProtocolError: the handshake is not complete, or nonces ran out.
        """
        key = self._traffic_key()
        nonce = self._next_nonce()
        flags = (MORE if more else 0) | (COMMAND if command else 0)
        # _as_bytes_like refuses str and ints (bytes(5) would be five zeros).
        raw = data if type(data) is bytes else bytes(_as_bytes_like(data))
        sealed = _seal_after(bytes((flags,)) + raw, self._send_prefix + nonce, key)
        return _MESSAGE_HEAD + nonce + sealed

    def encode_frame(self, data: bytes, *, more: bool = False, command: bool = False) -> bytes:
        """One whole ZMTP frame (header and MESSAGE body) carrying ``data``."""
        return encode_frame(self.encode_part(data, more=more, command=command))

    def encode_message(self, parts: Sequence[bytes]) -> bytes:
        """The frames of a whole message: one MESSAGE per part, MORE inside every box
        but the last.

        Raises:
            LocalProtocolError: no parts, or as :meth:`encode_part`.
        """
        if not parts:
            raise LocalProtocolError("a message has at least one part")
        return b"".join(self.encode_messages_sized((parts,))[0])

    def encode_messages(self, messages: Iterable[Sequence[bytes]]) -> bytes:
        """:meth:`encode_message` for each message, concatenated."""
        return b"".join(self.encode_messages_sized(messages)[0])

    def encode_messages_sized(
        self, messages: Iterable[Sequence[BytesLike]]
    ) -> tuple[list[bytearray | memoryview], int]:
        """Seal a batch of messages into buffers of frames; also return the size of
        their parts (before sealing).

        Each buffer is sized once and every part is sealed into its place by libsodium
        (``crypto_box_easy_afternm`` in place: the plaintext is laid where its
        ciphertext goes), so a batch costs a few allocations and one copy of each
        payload, with no per-part Python objects but the nonce.  Buffers hold up to
        64 KiB of frames (a larger part gets one of its own), given as memoryviews
        over memory that is not zeroed first and is reused once they are gone
        (:data:`_SEAL_MEMORY`).  The nonces are counted in a local and committed
        only when the whole batch is sealed, so a bad part (not bytes-like:
        TypeError; an empty message: ValueError) leaves nothing half sent.

        Raises:
            TypeError, ValueError: as above.
            LocalProtocolError: before the handshake completed, or nonces ran out.
        """
        key, nonce_buf, nonce_c, _, _ = self._traffic_cdata()
        if type(messages) in _SEQUENCES:
            if len(messages) == 1:  # type: ignore[arg-type]
                # One message of one small part (the per-message API with an eager
                # writer seals one at a time): without the general path's plan.
                (parts,) = messages
                if len(parts) == 1:
                    part = parts[0]
                    if type(part) is bytes and len(part) < _SMALL_PART:
                        return [self._seal_one(part, key, nonce_buf, nonce_c)], len(part)
            sealed = self._seal_small(messages, key, nonce_buf, nonce_c)  # type: ignore[arg-type]
            if sealed is not None:
                return sealed
        # (payload, its size, inner flags), and where each buffer ends in the plan.
        plan: list[tuple[BytesLike, int, int]] = []
        add = plan.append
        cuts: list[tuple[int, int]] = []  # (index after the buffer's last part, size)
        size = 0
        total = 0
        for parts in messages:
            last = len(parts) - 1
            if last < 0:
                raise ValueError("a message needs at least one frame")
            for i, part in enumerate(parts):
                if type(part) is bytes:
                    raw: BytesLike = part
                    n = len(part)
                else:
                    raw = _as_bytes_like(part)
                    n = raw.nbytes if isinstance(raw, memoryview) else len(raw)
                body = _MESSAGE_OVERHEAD + n
                frame = body + (2 if body < 256 else 9)
                if size and size + frame > _SEAL_CHUNK:
                    cuts.append((len(plan), size))
                    size = 0
                size += frame
                total += n
                add((raw, n, MORE if i < last else 0))
        if size:
            cuts.append((len(plan), size))
        nonce = self._sent_nonce
        if nonce + len(plan) > _MAX_NONCE:
            raise LocalProtocolError("CURVE short nonces exhausted: 2^64 - 1 commands sent")
        seal = _sodium.crypto_box_easy_afternm
        head = _MESSAGE_HEAD
        short_head = _SHORT_HEAD.pack_into
        long_head = _LONG_HEAD.pack_into
        put_nonce = _NONCE.pack_into
        out: list[bytearray | memoryview] = []
        first = 0
        for end_index, buf_size in cuts:
            # Uninitialised memory, pooled (_SEAL_MEMORY): every octet of the chunk is
            # written below.  (The memoryview over the cffi buffer keeps it alive,
            # and busy for the pool, until the chunk has been written.)
            base = _SEAL_MEMORY.take(buf_size)
            buf = memoryview(_ffi.buffer(base, buf_size))
            pos = 0
            for raw, n, flags in plan[first:end_index]:
                nonce += 1
                body = _MESSAGE_OVERHEAD + n
                # Header, name, short nonce, room for the MAC and the inner flags in
                # one write.  Outer flags: never MORE, never COMMAND
                # (specs/libzmq-behaviour.md §4.2).
                if body < 256:
                    short_head(buf, pos, 0, body, head, nonce, flags)
                    start = pos + 18
                else:
                    long_head(buf, pos, 2, body, head, nonce, flags)
                    start = pos + 25
                # The plaintext (flags octet, payload) is laid where its ciphertext
                # goes, after the MAC, and sealed in place.
                plain = start + _MAC + 1
                pos = plain + n
                buf[plain:pos] = raw
                put_nonce(nonce_buf, 16, nonce)  # the box nonce: prefix + short nonce
                at = base + start
                seal(at, at + _MAC, n + 1, nonce_c, key)
            out.append(buf)
            first = end_index
        self._sent_nonce = nonce
        return out, total

    def _seal_small(
        self,
        messages: Sequence[Sequence[BytesLike]],
        key: Any,
        nonce_buf: bytearray,
        nonce_c: Any,
    ) -> tuple[list[bytearray | memoryview], int] | None:
        """:meth:`encode_messages_sized` for a batch whose parts are all ``bytes``
        below :data:`_SMALL_PART` octets (short frames of 35 octets + part): in one
        pass, without the general path's plan.

        The buffers' sizes follow from the parts' total, counted at C level before
        the loop (``map(len, ...)``); per part the loop makes one struct call (frame
        head, flags octet and part, :data:`_SMALL_FRAME`), one for the box nonce and
        the libsodium call.  Buffers are cut where the general path cuts them
        (before a frame that would take one past :data:`_SEAL_CHUNK`), so the bytes
        and the buffers are the same.  None, with nothing sealed for good (no nonce
        is committed), for a batch that is not like that (a part of another type or
        size, an empty message, no messages): the general path takes it whole.  A
        batch of one-part messages of one size below :data:`_RUN_SEAL_MAX` (long
        frames too) goes to :meth:`_seal_run` first.
        """
        try:
            head_part = messages[0][0]
            if type(head_part) is not bytes or len(head_part) >= _RUN_SEAL_MAX:
                return None  # at once for a large part (no pass over the batch for nothing)
            counts = list(map(len, messages))
            payload = sum(map(len, chain.from_iterable(messages)))
        except (TypeError, IndexError):
            return None  # the general path says what is wrong
        if not min(counts):
            return None
        count = sum(counts)
        nonce = self._sent_nonce
        if nonce + count > _MAX_NONCE:
            return None
        if count == len(counts):  # one part each: perhaps a run of one size
            sealed = self._seal_run(messages, payload, key, nonce_buf, nonce_c)
            if sealed is not None:
                return sealed
        if len(head_part) >= _SMALL_PART:
            return None  # long frames that are not one run: the general path
        left = payload + (_MESSAGE_OVERHEAD + 2) * count  # frame octets to place
        room = left if left <= _SEAL_CHUNK else _SEAL_CHUNK
        buf = bytearray(room)
        at0 = _ffi.from_buffer(buf) + 18  # where the box of a frame at 0 goes
        out: list[bytearray | memoryview] = [buf]
        frames = _SMALL_FRAME
        small = _SMALL_PART
        seal = _sodium.crypto_box_easy_afternm
        put_nonce = _NONCE.pack_into
        head = _MESSAGE_HEAD
        pos = 0
        for parts in messages:
            k = len(parts)
            for part in parts:
                n = len(part)
                if type(part) is not bytes or n >= small:
                    return None
                k -= 1
                nonce += 1
                end = pos + 35 + n
                if end > room:
                    # The next buffer: what is left, up to _SEAL_CHUNK (this one
                    # ends at pos: its slack, under one frame, is left out).
                    out[-1] = memoryview(buf)[:pos]
                    left -= pos
                    room = left if left <= _SEAL_CHUNK else _SEAL_CHUNK
                    buf = bytearray(room)
                    at0 = _ffi.from_buffer(buf) + 18
                    out.append(buf)
                    pos = 0
                    end = 35 + n
                # Header (outer flags 00: never MORE, never COMMAND), name, short
                # nonce, room for the MAC, inner flags (MORE but on the last part),
                # part; then the box nonce (prefix + short nonce) and the seal in
                # place over the flags octet and the part.
                frames[n](buf, pos, 0, 33 + n, head, nonce, k > 0, part)
                put_nonce(nonce_buf, 16, nonce)
                at = at0 + pos
                seal(at, at + _MAC, n + 1, nonce_c, key)
                pos = end
        self._sent_nonce = nonce
        return out, payload

    def _seal_run(
        self,
        messages: Sequence[Sequence[BytesLike]],
        payload: int,
        key: Any,
        nonce_buf: bytearray,
        nonce_c: Any,
    ) -> tuple[list[bytearray | memoryview], int] | None:
        """:meth:`_seal_small` for one-part messages all of one size below
        :data:`_RUN_SEAL_MAX` (a stream of fixed-size records): the frames differ only
        in their short nonce and box, so each buffer is laid out by C-level passes (the
        one head, 35 octets or 42 for a long frame, joined with the parts; the short
        nonces, packed by one ``map``, copied down the frames' stride octet by octet)
        and the loop per part is the box nonce and the libsodium call.  Same octets
        and buffers as the general path.  None, with nothing committed, for any other
        batch.
        """
        try:
            size = len(messages[0][0])
            count = len(messages)
            if size >= _RUN_SEAL_MAX or payload != size * count:
                return None
            bodies: list[BytesLike] = [body for (body,) in messages]
            if list(map(len, bodies)).count(size) != count:
                return None
        except (TypeError, ValueError):
            return None
        body = _MESSAGE_OVERHEAD + size
        # The head of every frame: header, name, short nonce 0, MAC room, flags 0.
        if body < 256:
            head = _SHORT_HEAD.pack(0, body, _MESSAGE_HEAD, 0, 0)
        else:
            head = _LONG_HEAD.pack(2, body, _MESSAGE_HEAD, 0, 0)
        sep = bytearray(head)
        stride = len(head) + size
        box_at = len(head) - 1 - _MAC  # the box: MAC, then the flags octet and part
        short_at = box_at - _SHORT  # the short nonce, just before the box
        # Frames per buffer, as the general path cuts them (a frame larger than a
        # buffer would be, never in production, gets one of its own there too).
        per = max(1, _SEAL_CHUNK // stride)
        seal = _sodium.crypto_box_easy_afternm
        pack_nonce = _NONCE.pack
        plain = size + 1
        nonce = self._sent_nonce
        out: list[bytearray | memoryview] = []
        for low in range(0, count, per):
            chunk = bodies[low : low + per]
            frames = len(chunk)
            chunk.insert(0, b"")  # the first frame's head too, in the same join
            try:
                buf = sep.join(chunk)
            except TypeError:
                return None  # a part that is not bytes-like: the general path says so
            if len(buf) != frames * stride:
                return None  # a view whose len() is not its size in octets
            first = nonce + 1
            nonce += frames
            # The short nonces, octet j of each down its stride after the name.
            nonces = b"".join(map(pack_nonce, range(first, nonce + 1)))
            for j in range(_SHORT):
                buf[short_at + j :: stride] = nonces[j::_SHORT]
            # The box nonces (prefix + short nonce) of this buffer's frames, one after
            # the other, laid out the same way: no call per part to write one.
            box_nonces = bytearray(nonce_buf) * frames
            for j in range(_SHORT):
                box_nonces[16 + j :: 24] = nonces[j::_SHORT]
            at = _ffi.from_buffer(buf) + box_at  # the first box
            box_nonce = _ffi.from_buffer(box_nonces)
            for _ in range(frames):
                seal(at, at + _MAC, plain, box_nonce, key)
                at += stride
                box_nonce += 24
            out.append(buf)
        self._sent_nonce = nonce
        return out, payload

    def _seal_one(self, part: bytes, key: Any, nonce_buf: bytearray, nonce_c: Any) -> bytearray:
        """One short MESSAGE frame carrying ``part`` (below :data:`_SMALL_PART`
        octets, no MORE): :meth:`encode_messages_sized` for one small part."""
        nonce = self._sent_nonce + 1
        if nonce > _MAX_NONCE:
            raise LocalProtocolError("CURVE short nonces exhausted: 2^64 - 1 commands sent")
        n = len(part)
        buf = bytearray(_MESSAGE_OVERHEAD + 2 + n)
        _SHORT_HEAD.pack_into(buf, 0, 0, _MESSAGE_OVERHEAD + n, _MESSAGE_HEAD, nonce, 0)
        buf[35:] = part  # after the 18-octet head, the MAC and the flags octet
        _NONCE.pack_into(nonce_buf, 16, nonce)
        at = _ffi.from_buffer(buf) + 18
        _sodium.crypto_box_easy_afternm(at, at + _MAC, n + 1, nonce_c, key)
        self._sent_nonce = nonce
        return buf

    def encode_command(self, command_frame_body: bytes) -> bytes:
        """A command (``name-size name data``, as :class:`Command` encodes without its
        frame header) sealed in one MESSAGE frame with the COMMAND flag: how libzmq sends
        PING, PONG, SUBSCRIBE and CANCEL over CURVE."""
        return self.encode_frame(command_frame_body, command=True)

    def decode_frame(self, body: bytes | bytearray | memoryview) -> CurveFrame:
        """Open one received MESSAGE frame body (:meth:`open_spans` for one frame).

        The frame's own flags are the connection's business: libzmq reads the body
        whatever they are (it sends ``00``, or ``02`` for a long frame).  Inside, a
        COMMAND part is a command whatever else is set, as the connection takes it.

        Raises:
            CurveMessageError: not a MESSAGE, or shorter than 33 octets.
            NonceError: the short nonce does not increase.
            DecryptionFailed: the box does not open.
            LocalProtocolError: called before the handshake completed.
        """
        data = bytes(body)
        items, partial, _, error = self.open_spans(data, (0, len(data)), [])
        if error is not None:
            raise error
        if partial:  # MORE: the message goes on
            return CurveFrame(partial[0], True, False)
        (item,) = items
        if isinstance(item, bytes):  # a command body
            return CurveFrame(item, False, True)
        return CurveFrame(item[0], False, False)

    def open_spans(
        self,
        data: bytes | memoryview,
        spans: Sequence[int],
        partial: list[bytes],
        stride: int = 0,
    ) -> tuple[list[list[bytes] | bytes], list[bytes], bool, ProtocolError | None]:
        """Open a batch of received MESSAGE frame bodies straight into messages: what
        the connection calls (:meth:`decode_frame` opens one frame, for tools and tests).

        Args:
            data: received bytes holding the frame bodies (or a view of a buffer the
                caller reuses: every part and command returned is a copy).
            spans: the start and end offset in ``data`` of each body, flat:
                ``[start0, end0, start1, end1, ...]``
                (:meth:`~zmtp.protocol.framing.FrameDecoder.decode_spans`).  The
                frames' outer flags play no part, as in libzmq.
            partial: the parts of a message still in progress; appended to.
            stride: nonzero if the spans are known to be one run of equal frames
                that far apart (:attr:`FrameDecoder.spans_stride
                <zmtp.protocol.framing.FrameDecoder.spans_stride>`): they are then
                opened as a run without checking that they are.

        Returns:
            ``(items, partial, commands, error)``, like
            :meth:`~zmtp.protocol.framing.FrameDecoder.decode_messages` with the
            inner flags (MORE 1, COMMAND 2): ``items`` holds each completed message
            (a list of parts) and each command (its body, ``bytes``) in order,
            ``partial`` the message still in progress, ``commands`` whether any
            command is among the items, and ``error`` the failure of the first frame
            that does not open (:class:`CurveMessageError`, :class:`NonceError`,
            :class:`DecryptionFailed`) or None.  Nothing from that frame on is
            opened; what came before it is authentic.  Per part this is one loop
            iteration, with no ``(data, flags)`` pair for a second loop to take apart,
            and the boxes are opened where they lie in ``data`` (one cdata for the
            batch, not a bytes object and a cdata per part).

        Raises:
            LocalProtocolError: called before the handshake completed.
        """
        key, _, _, nonce_buf, nonce_c = self._traffic_cdata()
        items: list[list[bytes] | bytes] = []
        commands = False
        count = len(spans) >> 1
        if count >= RUN_MIN:
            first = spans[0]
            size = spans[1] - first - _MESSAGE_OVERHEAD
            step = spans[2] - first
            if 0 <= size < _RUN_PART and step > 0:
                stop = first + count * step
                # Bodies of one size at a constant stride (the frames of a stream of
                # equal messages): known so, or checked at C level; opened as a run.
                starts = spans[0::2]
                if step == stride or (
                    starts == list(range(first, stop, step))
                    and spans[1::2]
                    == list(
                        range(
                            first + size + _MESSAGE_OVERHEAD,
                            stop + size + _MESSAGE_OVERHEAD,
                            step,
                        )
                    )
                ):
                    done, partial, commands = self._open_run(data, starts, size, partial, items)
                    if done == count:
                        return items, partial, commands, None
                    # The rest, from the frame that stopped the run: the loop below
                    # finds what is wrong with it (or opens what follows).
                    spans = spans[2 * done :]
        boxes = _ffi.from_buffer(data) + 16  # a body's box starts 16 octets in
        append = items.append
        last = self._peer_nonce
        name = _MESSAGE_NAME
        scratch = self._scratch
        room = len(scratch)
        text = self._scratch_text
        open_box = _sodium.crypto_box_open_easy_afternm
        unpack = _ffi.unpack
        get_head = _NAME_NONCE.unpack_from
        put_nonce = _NONCE.pack_into
        # Large parts are opened straight into the bytes delivered, if we may.
        direct = _DIRECT_PART if self._opened_part is not None else _MAX_NONCE
        error: ProtocolError | None = None
        bounds = iter(spans)
        for start, end in zip(bounds, bounds):  # noqa: B905 (pairs of one list)
            size = end - start - _MESSAGE_OVERHEAD
            if size < 0:
                error = _malformed_message(bytes(data[start:end]))
                break
            head, value = get_head(data, start)  # name, short nonce
            if head != name:
                error = _malformed_message(bytes(data[start:end]))
                break
            if value <= last:
                error = NonceError(
                    f"MESSAGE short nonce {value} does not follow {last}: replayed or reordered",
                    reason=b"Invalid nonce",
                )
                break
            put_nonce(nonce_buf, 16, value)  # the box nonce: prefix + short nonce
            if size >= direct:
                flags, part = self._open_direct(boxes + start, size, nonce_c, key)
                if part is None:
                    error = _bad_box()
                    break
            else:
                if room <= size:
                    room = size + 4096 if size < _SCRATCH_KEEP - 4096 else size + 1
                    scratch = _ffi.new("unsigned char[]", room)
                    text = _ffi.cast("char *", scratch) + 1
                if open_box(scratch, boxes + start, size + 17, nonce_c, key):
                    error = _bad_box()
                    break
                flags = scratch[0]
                part = unpack(text, size)
            last = value
            if flags == 0:  # the last (or only) part of a message: the common case
                if partial:
                    partial.append(part)
                    append(partial)
                    partial = []
                else:  # a one-part message: no list to empty afterwards
                    append([part])
            elif flags & COMMAND:  # PING, SUBSCRIBE, ... (a MORE bit beside is moot)
                append(part)
                commands = True
            else:  # MORE, or bits libzmq does not set (ignored, as libzmq does)
                partial.append(part)
                if not flags & MORE:
                    append(partial)
                    partial = []
        self._peer_nonce = last
        if room > _SCRATCH_KEEP:
            self._scratch = _NO_SCRATCH
            self._scratch_text = _NO_SCRATCH_TEXT
        elif scratch is not self._scratch:
            self._scratch = scratch
            self._scratch_text = text
        return items, partial, commands, error

    def _open_direct(self, box: Any, size: int, nonce_c: Any, key: Any) -> tuple[int, bytes | None]:
        """Open the box at ``box`` (of a part of ``size`` octets) straight into a new
        ``bytes`` from the part allocator: ``(inner flags, part)``, or ``(0, None)``
        if it does not open.  libsodium writes the flags octet on the octet before the
        part's first, which is put back at once (see
        :data:`~zmtp.protocol.mechanisms.base.PartAllocator`)."""
        assert self._opened_part is not None
        part, address = self._opened_part(size)
        into = _ffi.cast("unsigned char *", address)
        failed = _sodium.crypto_box_open_easy_afternm(into, box, size + 17, nonce_c, key)
        flags: int = into[0]
        into[0] = 0xFF
        if failed:
            return 0, None
        return flags, part

    def _open_run(
        self,
        data: bytes | memoryview,
        starts: Sequence[int],
        size: int,
        partial: list[bytes],
        items: list[list[bytes] | bytes],
    ) -> tuple[int, list[bytes], bool]:
        """:meth:`open_spans` for bodies of one size (``size`` octets of part each)
        at a constant stride from ``starts[0]`` (at least two): the names and the
        short nonces are checked down the stride at C level (every name
        ``07 'MESSAGE'``, the nonces strictly increasing from the last accepted), the
        box nonces laid out in one buffer; each box is opened next to the last in the
        scratch buffer, and the parts are cut from there afterwards, at C level for a
        run of one-part messages (``struct.iter_unpack``; the inner flags octets are
        checked down their stride).  Per part that leaves the libsodium call and
        three pointer steps.

        Opens nothing if a name or a nonce is wrong, and stops before the first box
        that does not open, without reporting why: the caller's loop looks at those
        frames again and reports them as ever.  Fills ``items``; returns
        ``(bodies opened, partial, commands)`` and records the last nonce accepted.
        """
        key, _, _, nonce_buf, _ = self._traffic_cdata()
        stride = size + 1  # flags octet and part
        need = len(starts) * stride
        scratch = self._scratch
        if len(scratch) < need:
            scratch = _ffi.new("unsigned char[]", need + 4096)
            if need <= _SCRATCH_KEEP:
                self._scratch = scratch
                self._scratch_text = _ffi.cast("char *", scratch) + 1
        count = len(starts)
        first = starts[0]
        step = starts[1] - first
        stop = first + count * step
        # The names, octet by octet down the stride, and the short nonces, gathered
        # the same way into one buffer and read as numbers: checked at C level.
        for j in range(len(_MESSAGE_HEAD)):
            if bytes(data[first + j : stop : step]).count(_MESSAGE_HEAD[j]) != count:
                return 0, partial, False  # not all MESSAGEs: the caller's loop says where
        shorts = bytearray(_SHORT * count)
        for j in range(_SHORT):
            shorts[j::_SHORT] = data[first + 8 + j : stop : step]
        values = array("Q", shorts)
        if _LITTLE:
            values.byteswap()
        last = self._peer_nonce
        if values[0] <= last or not all(map(gt, values[1:], values)):
            return 0, partial, False  # a nonce that does not increase: the same
        # The box nonces (prefix + short nonce), one after the other.
        box_nonces = bytearray(nonce_buf) * count
        for j in range(_SHORT):
            box_nonces[16 + j :: 24] = shorts[j::_SHORT]
        boxes = _ffi.from_buffer(data) + 16  # a body's box starts 16 octets in
        box = size + _MAC + 1
        open_box = _sodium.crypto_box_open_easy_afternm
        origin = _ffi.cast("unsigned char *", scratch)
        into = origin
        box_nonce = _ffi.from_buffer(box_nonces)
        for start in starts:
            if open_box(into, boxes + start, box, box_nonce, key):
                break  # the caller's loop opens it again, and reports it
            into += stride
            box_nonce += 24
        done: int = (into - origin) // stride
        if not done:
            return 0, partial, False
        self._peer_nonce = values[done - 1]
        opened = _ffi.buffer(scratch, done * stride)
        flags = bytes(memoryview(opened)[::stride])
        if not partial and flags.count(0) == done:
            # One-part messages only (the common case): [part] each, cut at C level.
            # (A record: the inner flags octet, then the part.)
            items += map(list, run_records(1, size).iter_unpack(opened))
            return done, partial, False
        commands = False
        append = items.append
        at = 1
        for flag in flags:  # as in open_spans' loop
            part = opened[at : at + size]
            at += stride
            if flag == 0:
                partial.append(part)
                append(partial)
                partial = []
            elif flag & COMMAND:
                append(part)
                commands = True
            else:
                partial.append(part)
                if not flag & MORE:
                    append(partial)
                    partial = []
        return done, partial, commands

    def _parse_metadata(self, data: bytes) -> Metadata:
        return parse_properties(data, max_size=self.max_metadata_size)


class CurveClient(_Curve):
    """The client side of a CURVE handshake, then the connection's traffic codec.

    Args:
        server_key: the server's long-term public key S.
        public_key: our long-term public key C.
        secret_key: our long-term secret key c.
        max_metadata_size: cap on the server's READY properties.

    Each key is 32 raw octets or 40 Z85 characters (see
    :func:`zmtp.protocol.keys.normalize_key`).

    Raises:
        TypeError, ValueError: a key in no accepted form, or a public key that does not
            belong to the secret key.
    """

    as_server = False
    sends_errors = False  # RFC 26 §"ERROR": a client never sends one
    _send_prefix = MESSAGE_PREFIX_CLIENT
    _recv_prefix = MESSAGE_PREFIX_SERVER

    def __init__(
        self,
        server_key: bytes | str,
        public_key: bytes | str,
        secret_key: bytes | str,
        *,
        max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE,
    ) -> None:
        super().__init__(max_metadata_size=max_metadata_size)
        self.server_key = normalize_key(server_key, name="server key")
        self.public_key = normalize_key(public_key, name="public key")
        secret = PrivateKey(normalize_key(secret_key, name="secret key"))
        if bytes(secret.public_key) != self.public_key:
            raise ValueError("the CURVE public key does not belong to the secret key")
        try:
            Box(secret, PublicKey(self.server_key))
        except CryptoError:
            raise ValueError("the CURVE server key is a degenerate point") from None
        self._secret: PrivateKey | None = secret
        self._transient: PrivateKey | None = None
        self._server_box: Box | None = None  # Box(c', S): HELLO and WELCOME
        self._properties: list[tuple[str, bytes]] = []
        self._stage = "start"

    def start(self, properties: list[tuple[str, bytes]]) -> list[bytes]:
        """Make C' and send HELLO."""
        if self._stage != "start":
            raise LocalProtocolError("CURVE client started twice")
        self._properties = list(properties)
        encode_properties(self._properties)  # fail now, not after the server's WELCOME
        self._transient = _new_transient()
        self._server_box = _box(self._transient, self.server_key, "server key")
        nonce = self._next_nonce()
        signature = _seal(self._server_box, _HELLO_SIGNATURE, HELLO_PREFIX + nonce)
        data = _VERSION + _HELLO_PADDING + bytes(self._transient.public_key) + nonce + signature
        self._stage = "welcome"
        return [encode_command(HELLO, data)]

    def receive_command(self, command: Command) -> list[bytes]:
        """WELCOME (answered with INITIATE), then READY; or the server's ERROR.

        Raises:
            PeerError: the server sent ERROR (it refused us).
            HandshakeError: an unexpected or malformed command.
            DecryptionFailed: a box that does not open.
            NonceError: READY's short nonce is not above 0.
        """
        if command.name == ERROR and self._stage in ("welcome", "ready"):
            self._stage = "done"
            raise PeerError(parse_error(command.data))
        if self._stage == "welcome":
            _expect(command, WELCOME, "after HELLO")
            return [self._receive_welcome(command.data)]
        if self._stage == "ready":
            _expect(command, READY, "after INITIATE")
            self._receive_ready(command.data)
            return []
        raise HandshakeError(
            f"unexpected {command.name!r} in the CURVE handshake ({self._stage})",
            reason=b"Unexpected command",
        )

    def _receive_welcome(self, data: bytes) -> bytes:
        _check_size(data, WELCOME, _WELCOME_DATA, exact=True)
        assert self._server_box is not None and self._transient is not None
        assert self._secret is not None
        plain = _open(self._server_box, data[_LONG:], WELCOME_PREFIX + data[:_LONG], "WELCOME")
        self._server_box = None
        server_transient, cookie = plain[:KEY_SIZE], plain[KEY_SIZE:]
        self._box = _box(self._transient, server_transient, "server transient key")
        # The vouch: C' and S, sealed from our long-term key to S'.
        vouch_nonce = _random(_LONG)
        vouch = _seal(
            _box(self._secret, server_transient, "server transient key"),
            bytes(self._transient.public_key) + self.server_key,
            VOUCH_PREFIX + vouch_nonce,
        )
        inner = self.public_key + vouch_nonce + vouch + encode_properties(self._properties)
        nonce = self._next_nonce()
        sealed = _seal(self._box, inner, INITIATE_PREFIX + nonce)
        # Neither secret is needed again: the shared key is in self._box.
        self._secret = None
        self._transient = None
        self._stage = "ready"
        return encode_command(INITIATE, cookie + nonce + sealed)

    def _receive_ready(self, data: bytes) -> None:
        _check_size(data, READY, _READY_MIN_DATA, exact=False)
        assert self._box is not None
        short = data[:_SHORT]
        value = self._check_nonce(short, "READY")
        plain = _open(self._box, data[_SHORT:], READY_PREFIX + short, "READY")
        self._peer_nonce = value
        self.peer_metadata = self._parse_metadata(plain)
        self._stage = "done"
        self.status = MechanismStatus.READY


class CurveServer(_Curve):
    """The server side of a CURVE handshake, then the connection's traffic codec.

    Args:
        secret_key: our long-term secret key s (32 raw octets or 40 Z85 characters).
        authorize: called with the client's long-term public key C (32 raw octets) once
            the INITIATE has been proven; True accepts, False refuses
            (:class:`AuthenticationFailed`, reason ``b"400"``), None means "no
            authenticator" and accepts any key, as libzmq does without a ZAP handler.
            Without a callback every key is accepted, unless ``zap``.
        zap: ask the authenticator (RFC 27) once INITIATE is proven
            (``WAITING_FOR_ZAP``, credential: C) and send READY only on a 200; the
            socket layer sets it unless ``zap_enforce_domain`` is set without a domain
            (libzmq's rule).  Ignored when ``authorize`` is given.
        zap_enforce: with ``zap``, refuse the client when no handler is bound; without
            it an absent handler means any key is accepted ("Stonehouse", as libzmq).
        max_metadata_size: cap on the client's INITIATE properties.

    After the handshake :attr:`client_key` holds C.
    """

    as_server = True
    _send_prefix = MESSAGE_PREFIX_SERVER
    _recv_prefix = MESSAGE_PREFIX_CLIENT

    def __init__(
        self,
        secret_key: bytes | str,
        *,
        authorize: Authorizer | None = None,
        zap: bool = False,
        zap_enforce: bool = False,
        max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE,
    ) -> None:
        super().__init__(max_metadata_size=max_metadata_size)
        self._secret = PrivateKey(normalize_key(secret_key, name="secret key"))
        self.public_key = bytes(self._secret.public_key)
        self.authorize = authorize
        self.zap = zap
        self.zap_enforce = zap_enforce
        # What READY needs once ZAP has answered: C, its metadata, the traffic box.
        self._pending: tuple[bytes, Metadata, Box] | None = None
        #: The client's long-term public key C, once the handshake is complete.
        self.client_key: bytes | None = None
        self._client_transient: bytes | None = None
        self._cookie_key: bytes | None = None
        self._properties: list[tuple[str, bytes]] = []
        self._stage = "start"

    def start(self, properties: list[tuple[str, bytes]]) -> list[bytes]:
        """Nothing to send: the client speaks first."""
        if self._stage != "start":
            raise LocalProtocolError("CURVE server started twice")
        self._properties = list(properties)
        encode_properties(self._properties)
        self._stage = "hello"
        return []

    def receive_command(self, command: Command) -> list[bytes]:
        """HELLO (answered with WELCOME), then INITIATE (answered with READY).

        Raises:
            HandshakeError: an unexpected or malformed command (ERROR included: a client
                never sends one, RFC 26).
            DecryptionFailed: a box, the cookie or the vouch does not open, or holds
                other keys than this connection's.
            NonceError: INITIATE's short nonce does not follow HELLO's.
            AuthenticationFailed: ``authorize`` refused the client's key.
        """
        if self._stage == "hello":
            _expect(command, HELLO, "first")
            return [self._receive_hello(command.data)]
        if self._stage == "initiate":
            _expect(command, INITIATE, "after WELCOME")
            try:
                ready = self._receive_initiate(command.data)
                return [ready] if ready is not None else []
            finally:
                # Checked, whatever the outcome: the cookie key is never needed again.
                self._cookie_key = None
                if self.status is MechanismStatus.HANDSHAKING:
                    self._stage = "failed"
        raise HandshakeError(
            f"unexpected {command.name!r} in the CURVE handshake ({self._stage})",
            reason=b"Unexpected command",
        )

    def _receive_hello(self, data: bytes) -> bytes:
        _check_size(data, HELLO, _HELLO_DATA, exact=True)
        if data[:2] != _VERSION:
            raise HandshakeError(
                f"CURVE HELLO version {data[0]}.{data[1]}, only 1.0 is spoken",
                reason=b"Unsupported version",
            )
        if data[2:74] != _HELLO_PADDING:
            raise HandshakeError("CURVE HELLO padding is not all zeros", reason=b"Malformed HELLO")
        client_transient = data[74 : 74 + KEY_SIZE]
        short = data[74 + KEY_SIZE : 74 + KEY_SIZE + _SHORT]
        value = self._check_nonce(short, "HELLO")
        hello_box = _box(self._secret, client_transient, "client transient key")
        signature = _open(hello_box, data[74 + KEY_SIZE + _SHORT :], HELLO_PREFIX + short, "HELLO")
        if not hmac.compare_digest(signature, _HELLO_SIGNATURE):
            raise HandshakeError(
                "CURVE HELLO signature box does not hold 64 zeros", reason=b"Malformed HELLO"
            )
        self._peer_nonce = value
        self._client_transient = client_transient
        # S' exists only in the cookie from here on; K is this connection's alone.
        transient = _new_transient()
        self._cookie_key = _random(SecretBox.KEY_SIZE)
        cookie_nonce = _random(_LONG)
        cookie = cookie_nonce + _seal(
            SecretBox(self._cookie_key),
            client_transient + bytes(transient),
            COOKIE_PREFIX + cookie_nonce,
        )
        welcome_nonce = _random(_LONG)
        sealed = _seal(
            hello_box, bytes(transient.public_key) + cookie, WELCOME_PREFIX + welcome_nonce
        )
        self._stage = "initiate"
        return encode_command(WELCOME, welcome_nonce + sealed)

    def _receive_initiate(self, data: bytes) -> bytes | None:
        _check_size(data, INITIATE, _INITIATE_MIN_DATA, exact=False)
        assert self._cookie_key is not None and self._client_transient is not None
        cookie, short = data[:_COOKIE], data[_COOKIE : _COOKIE + _SHORT]
        keys = _open(
            SecretBox(self._cookie_key), cookie[_LONG:], COOKIE_PREFIX + cookie[:_LONG], "cookie"
        )
        if not hmac.compare_digest(keys[:KEY_SIZE], self._client_transient):
            raise DecryptionFailed(
                "the cookie was issued for another client transient key",
                reason=b"Invalid cookie",
            )
        value = self._check_nonce(short, "INITIATE")
        server_transient = PrivateKey(keys[KEY_SIZE:])
        box = _box(server_transient, self._client_transient, "client transient key")
        plain = _open(box, data[_COOKIE + _SHORT :], INITIATE_PREFIX + short, "INITIATE")
        client_key = plain[:KEY_SIZE]
        vouch_nonce = plain[KEY_SIZE : KEY_SIZE + _LONG]
        vouch_box = plain[KEY_SIZE + _LONG : KEY_SIZE + _LONG + _VOUCH_BOX]
        vouch = _open(
            _box(server_transient, client_key, "client key"),
            vouch_box,
            VOUCH_PREFIX + vouch_nonce,
            "vouch",
        )
        if not hmac.compare_digest(vouch, self._client_transient + self.public_key):
            raise DecryptionFailed(
                "the vouch names another transient key or server", reason=b"Invalid vouch"
            )
        metadata = self._parse_metadata(plain[KEY_SIZE + _LONG + _VOUCH_BOX :])
        self._peer_nonce = value
        self._client_transient = None
        if self.authorize is not None:
            if self.authorize(client_key) is False:
                raise AuthenticationFailed("the client's CURVE key was refused", reason=b"400")
        elif self.zap:
            self._pending = (client_key, metadata, box)
            self._stage = "zap"
            self._ask_zap((client_key,))
            return None
        return self._ready(client_key, metadata, box)

    def zap_unavailable(self) -> list[bytes]:
        if self.zap_enforce:
            self._zap_answered()
            self._pending = None
            self._stage = "failed"
            raise AuthenticationUnavailable(
                "zap_enforce_domain is set and no ZAP handler is bound at "
                "inproc://zeromq.zap.01: the CURVE client cannot be authenticated",
                reason=b"No ZAP handler",
            )
        return super().zap_unavailable()

    def zap_reply(
        self, status_code: bytes, user_id: bytes = b"", metadata: Metadata | None = None
    ) -> list[bytes]:
        try:
            return super().zap_reply(status_code, user_id, metadata)
        except AuthenticationFailed:
            self._pending = None
            self._stage = "failed"
            raise

    def _zap_accepted(self) -> list[bytes]:
        assert self._pending is not None
        client_key, metadata, box = self._pending
        self._pending = None
        return [self._ready(client_key, metadata, box)]

    def _ready(self, client_key: bytes, metadata: Metadata, box: Box) -> bytes:
        self.client_key = client_key
        self.peer_metadata = metadata
        self._box = box
        nonce = self._next_nonce()
        sealed = _seal(box, encode_properties(self._properties), READY_PREFIX + nonce)
        self._stage = "done"
        self.status = MechanismStatus.READY
        return encode_command(READY, nonce + sealed)
