"""zmtp.auth.Authenticator, driven directly: a DEALER of the same Context connected to
``inproc://zeromq.zap.01`` sends RFC 27 requests (as a server's engine will) and checks
the replies.  Nothing here needs the PLAIN/CURVE wiring of the connections.

Decisions follow pyzmq's ``zmq.auth.Authenticator``; the same requests are put to
pyzmq's own class in ``interop/test_authenticator_interop.py``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import zmtp
from zmtp.auth import CURVE_ALLOW_ANY, Authenticator, create_certificates
from zmtp.protocol import z85
from zmtp.protocol.keys import curve_keypair
from zmtp.protocol.zap import (
    ZAP_ENDPOINT,
    ZapReply,
    ZapRequest,
    encode_request,
    parse_reply,
)

PASSWORD = "hunter2-very-secret"


def raw_key(z85_key: bytes) -> bytes:
    return z85.decode(z85_key)


def null(address: bytes = b"127.0.0.1", domain: bytes = b"") -> ZapRequest:
    return ZapRequest(domain, address, b"SRV", b"NULL", ())


def plain(
    user: bytes = b"admin",
    password: bytes = PASSWORD.encode(),
    address: bytes = b"127.0.0.1",
    domain: bytes = b"",
) -> ZapRequest:
    return ZapRequest(domain, address, b"", b"PLAIN", (user, password))


def curve(key: bytes, address: bytes = b"127.0.0.1", domain: bytes = b"") -> ZapRequest:
    return ZapRequest(domain, address, b"", b"CURVE", (key,), request_id=b"7")


class Lab:
    """An Authenticator and a DEALER talking to it, in one Context."""

    def __init__(self, ctx: zmtp.Context, auth: Authenticator, dealer: Any) -> None:
        self.ctx, self.auth, self.dealer = ctx, auth, dealer

    async def send(self, frames: list[bytes]) -> None:
        await self.dealer.send_multipart(frames)

    async def recv(self) -> list[bytes]:
        with trio.fail_after(10):  # a bound, not a synchronisation: replies come at once
            frames: list[bytes] = await self.dealer.recv_multipart()
            return frames

    async def ask(self, req: ZapRequest) -> ZapReply:
        await self.send([b"", *encode_request(req)])
        delimiter, *frames = await self.recv()
        assert delimiter == b""
        return parse_reply(frames, request_id=req.request_id)

    async def status(self, req: ZapRequest) -> tuple[bytes, bytes, bytes]:
        reply = await self.ask(req)
        return reply.status_code, reply.status_text, reply.user_id


@asynccontextmanager
async def lab(**kwargs: Any) -> AsyncIterator[Lab]:
    async with zmtp.Context() as ctx, Authenticator(ctx, **kwargs) as auth:
        dealer = ctx.socket(zmtp.DEALER, linger=0)
        await dealer.connect(ZAP_ENDPOINT)
        yield Lab(ctx, auth, dealer)


# ------------------------------------------------------------------------ NULL


async def test_null_is_let_in_as_anonymous() -> None:
    async with lab() as t:
        assert await t.status(null()) == (b"200", b"OK", b"anonymous")
        assert await t.status(null(domain=b"any")) == (b"200", b"OK", b"anonymous")


async def test_reply_echoes_request_id_and_is_well_formed() -> None:
    async with lab() as t:
        req = ZapRequest(b"", b"10.0.0.1", b"", b"NULL", (), request_id=b"\x00\xffid")
        reply = await t.ask(req)  # parse_reply checks version, id, status, metadata
        assert reply.request_id == b"\x00\xffid"
        assert reply.metadata == b""


# -------------------------------------------------------------- allow / deny


async def test_allow_list() -> None:
    async with lab() as t:
        t.auth.allow("10.0.0.1", "10.0.0.2")
        t.auth.allow("::1")
        assert (await t.status(null(b"10.0.0.2")))[0] == b"200"
        assert (await t.status(null(b"::1")))[0] == b"200"
        assert await t.status(null(b"10.0.0.3")) == (b"400", b"Address not allowed", b"")
        # An allowed address does not spare PLAIN its password.
        t.auth.configure_plain(passwords={"admin": PASSWORD})
        assert (await t.status(plain(address=b"10.0.0.1")))[0] == b"200"
        assert await t.status(plain(password=b"x", address=b"10.0.0.1")) == (
            b"400",
            b"Invalid password",
            b"",
        )
        assert (await t.status(plain(address=b"10.9.9.9")))[1] == b"Address not allowed"


async def test_deny_list() -> None:
    async with lab() as t:
        t.auth.deny("10.0.0.1")
        assert await t.status(null(b"10.0.0.1")) == (b"400", b"Address denied", b"")
        assert (await t.status(null(b"10.0.0.2")))[0] == b"200"
        t.auth.configure_plain(passwords={"admin": PASSWORD})
        assert (await t.status(plain(address=b"10.0.0.1")))[1] == b"Address denied"
        assert (await t.status(plain(address=b"10.0.0.2")))[0] == b"200"


async def test_allow_and_deny_exclude_each_other() -> None:
    async with zmtp.Context() as ctx:
        auth = Authenticator(ctx)
        auth.allow("10.0.0.1")
        with pytest.raises(ValueError, match="not both"):
            auth.deny("10.0.0.2")
        auth = Authenticator(ctx)
        auth.deny("10.0.0.1")
        with pytest.raises(ValueError, match="not both"):
            auth.allow("10.0.0.2")


async def test_unknown_mechanism_needs_an_allowed_address() -> None:
    # As pyzmq: a mechanism ZAP knows nothing about passes only on the allow list.
    async with lab() as t:
        req = ZapRequest(b"", b"10.0.0.1", b"", b"X-MINE", (b"a", b"b"))
        assert await t.status(req) == (b"400", b"NO ACCESS", b"")
        t.auth.allow("10.0.0.1")
        assert await t.status(req) == (b"200", b"OK", b"anonymous")


async def test_gssapi_is_let_in_by_principal() -> None:
    async with lab() as t:
        req = ZapRequest(b"", b"10.0.0.1", b"", b"GSSAPI", (b"alice@REALM",))
        assert await t.status(req) == (b"200", b"OK", b"alice@REALM")
        req = ZapRequest(b"", b"10.0.0.1", b"", b"GSSAPI", ())
        assert await t.status(req) == (b"400", b"Invalid credentials", b"")


# ----------------------------------------------------------------------- PLAIN


async def test_plain() -> None:
    async with lab() as t:
        assert await t.status(plain()) == (b"400", b"No passwords defined", b"")
        t.auth.configure_plain(passwords={"admin": PASSWORD, "bob": "b"})
        assert await t.status(plain()) == (b"200", b"OK", b"admin")
        assert await t.status(plain(b"bob", b"b")) == (b"200", b"OK", b"bob")
        assert await t.status(plain(password=b"wrong")) == (b"400", b"Invalid password", b"")
        assert await t.status(plain(password=b"")) == (b"400", b"Invalid password", b"")
        assert await t.status(plain(b"eve")) == (b"400", b"Invalid username", b"")
        assert await t.status(plain(b"bob", PASSWORD.encode())) == (
            b"400",
            b"Invalid password",
            b"",
        )


async def test_plain_credentials_as_bytes_and_non_ascii() -> None:
    async with lab() as t:
        t.auth.configure_plain(passwords={b"raw\xff": b"p\x00w"})
        # The user id is the username as text (undecodable octets replaced), as pyzmq.
        assert await t.status(plain(b"raw\xff", b"p\x00w")) == (b"200", b"OK", b"raw\xef\xbf\xbd")
        assert (await t.status(plain(b"raw\xff", b"p\x00x")))[1] == b"Invalid password"
        t.auth.configure_plain(passwords={"jürgen": "pässword"})
        ok = plain("jürgen".encode(), "pässword".encode())
        assert await t.status(ok) == (b"200", b"OK", "jürgen".encode())
        # Two different undecodable passwords are not the same password.
        t.auth.configure_plain(passwords={"u": "\ufffd"})
        assert (await t.status(plain(b"u", b"\xff")))[0] == b"400"


async def test_plain_password_mapping_is_live() -> None:
    # pyzmq keeps the caller's dict: a user added to it later is known at once.
    async with lab() as t:
        users = {"admin": PASSWORD}
        t.auth.configure_plain(passwords=users)
        assert (await t.status(plain(b"carol", b"c")))[1] == b"Invalid username"
        users["carol"] = "c"
        assert (await t.status(plain(b"carol", b"c")))[0] == b"200"


async def test_plain_without_passwords_changes_nothing() -> None:
    async with lab() as t:
        t.auth.configure_plain(passwords={"admin": PASSWORD})
        t.auth.configure_plain()
        t.auth.configure_plain(passwords={})
        assert (await t.status(plain()))[0] == b"200"


async def test_plain_domains_match_as_pyzmq() -> None:
    async with lab() as t:
        t.auth.configure_plain(passwords={"admin": PASSWORD})  # domain "*"
        assert (await t.status(plain(domain=b"")))[0] == b"200"
        # "*" is the empty domain's entry, not a wildcard:
        assert await t.status(plain(domain=b"global")) == (b"400", b"Invalid domain", b"")
        assert await t.status(plain(domain=b"*")) == (b"200", b"OK", b"admin")
        t.auth.configure_plain("global", {"g": "gg"})
        assert (await t.status(plain(b"g", b"gg", domain=b"global")))[0] == b"200"
        assert (await t.status(plain(b"g", b"gg")))[1] == b"Invalid username"
        assert (await t.status(plain(domain=b"global")))[1] == b"Invalid username"


# ----------------------------------------------------------------------- CURVE


async def test_curve_unconfigured_refuses() -> None:
    async with lab() as t:
        public, _ = curve_keypair()
        assert await t.status(curve(raw_key(public))) == (b"400", b"Unknown domain", b"")


async def test_curve_allow_any() -> None:
    async with lab() as t:
        public, _ = curve_keypair()
        t.auth.configure_curve(domain="*", location=CURVE_ALLOW_ANY)
        assert t.auth.allow_any
        reply = await t.ask(curve(raw_key(public)))
        assert (reply.status_code, reply.user_id) == (b"200", public)  # Z85 user id
        assert reply.request_id == b"7"
        # pyzmq: allow-any holds for every domain once set for one.
        assert (await t.status(curve(raw_key(public), domain=b"other")))[0] == b"200"


async def test_curve_certificate_directory(tmp_path: Path) -> None:
    async with lab() as t:
        public_files = []
        for name in ("alice", "bob"):
            public_file, _ = create_certificates(tmp_path, name)
            public_files.append(public_file)
        known = zmtp.auth.load_certificate(public_files[0])[0]
        stranger, _ = curve_keypair()
        t.auth.configure_curve(location=tmp_path)
        assert not t.auth.allow_any
        assert await t.status(curve(raw_key(known))) == (b"200", b"OK", known)
        assert await t.status(curve(raw_key(stranger))) == (b"400", b"Unknown key", b"")
        assert (await t.status(curve(raw_key(known), domain=b"x")))[1] == b"Unknown domain"
        # Re-read after a change, as pyzmq: the directory is read by configure_curve.
        public_files[0].unlink()
        assert (await t.status(curve(raw_key(known))))[0] == b"200"
        t.auth.configure_curve(location=str(tmp_path))
        assert (await t.status(curve(raw_key(known))))[1] == b"Unknown key"


async def test_curve_key_list_in_every_form() -> None:
    async with lab() as t:
        keys = [curve_keypair()[0] for _ in range(3)]
        t.auth.configure_curve("global", [keys[0].decode(), keys[1], raw_key(keys[2])])
        for key in keys:
            assert await t.status(curve(raw_key(key), domain=b"global")) == (b"200", b"OK", key)
        assert (await t.status(curve(raw_key(keys[0]))))[1] == b"Unknown domain"
        stranger = curve_keypair()[0]
        assert (await t.status(curve(raw_key(stranger), domain=b"global")))[1] == b"Unknown key"


async def test_configuring_keys_turns_allow_any_off() -> None:
    async with lab() as t:
        public = curve_keypair()[0]
        t.auth.configure_curve(location=CURVE_ALLOW_ANY)
        t.auth.configure_curve(location=[])
        assert not t.auth.allow_any
        assert (await t.status(curve(raw_key(public))))[1] == b"Unknown key"


async def test_curve_bad_configuration(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with zmtp.Context() as ctx:
        auth = Authenticator(ctx)
        with pytest.raises(ValueError, match="client key"):
            auth.configure_curve(location=[b"short"])
        with pytest.raises(TypeError, match="iterable of keys"):
            auth.configure_curve(location=curve_keypair()[0])  # one key, not a list
        # A directory that cannot be read is logged and changes nothing (pyzmq).
        auth.configure_curve(location=[curve_keypair()[0]])
        before = dict(auth.certs)
        (tmp_path / "bad.key").write_text('curve\n    public-key = "tooshort"\n')
        with caplog.at_level(logging.ERROR, logger="zmtp.auth"):
            auth.configure_curve(location=tmp_path)
            auth.configure_curve(location=tmp_path / "missing")
        assert auth.certs == before
        assert len([r for r in caplog.records if "Failed to load CURVE certs" in r.message]) == 2


def test_load_certificates_refuses_a_missing_directory(tmp_path: Path) -> None:
    # As pyzmq's: a typo in the path must not look like an empty directory.
    with pytest.raises(NotADirectoryError, match="not a certificate directory"):
        zmtp.auth.load_certificates(tmp_path / "missing")
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        zmtp.auth.load_certificates(tmp_path / "file")


class Provider:
    def __init__(self, allowed: set[bytes]) -> None:
        self.allowed = allowed
        self.calls: list[tuple[str, bytes]] = []

    def callback(self, domain: str, key: bytes) -> bool:
        self.calls.append((domain, key))
        return key in self.allowed


class AsyncProvider(Provider):
    async def callback(self, domain: str, key: bytes) -> bool:  # type: ignore[override]
        await trio.lowlevel.checkpoint()
        return super().callback(domain, key)


@pytest.mark.parametrize("kind", ["object", "async object", "function", "async function"])
async def test_curve_callback(kind: str) -> None:
    good, bad = curve_keypair()[0], curve_keypair()[0]
    provider = AsyncProvider({good}) if "async" in kind else Provider({good})
    async with lab() as t:
        if kind in {"object", "async object"}:
            t.auth.configure_curve_callback(credentials_provider=provider)
        else:
            t.auth.configure_curve_callback(credentials_provider=provider.callback)
        assert await t.status(curve(raw_key(good))) == (b"200", b"OK", good)
        assert await t.status(curve(raw_key(bad))) == (b"400", b"Unknown key", b"")
        assert (await t.status(curve(raw_key(good), domain=b"x")))[1] == b"Unknown domain"
        # The empty domain is asked about as "*", the key in Z85, as pyzmq does.
        assert provider.calls == [("*", good), ("*", bad)]


async def test_curve_callback_overrides_certificates_and_allow_any() -> None:
    async with lab() as t:
        key = curve_keypair()[0]
        t.auth.configure_curve(location=[key])
        t.auth.configure_curve(location=CURVE_ALLOW_ANY)
        t.auth.configure_curve_callback("other", Provider(set()))
        assert not t.auth.allow_any
        # Once any callback exists, certificates are not consulted (pyzmq).
        assert (await t.status(curve(raw_key(key))))[1] == b"Unknown domain"


async def test_curve_callback_none_configures_nothing(caplog: pytest.LogCaptureFixture) -> None:
    async with zmtp.Context() as ctx:
        auth = Authenticator(ctx)
        with caplog.at_level(logging.ERROR, logger="zmtp.auth"):
            auth.configure_curve_callback("d", None)
        assert auth.credentials_providers == {}
        assert "None credentials_provider" in caplog.text


async def test_failing_callback_is_a_500_and_the_handler_lives_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = curve_keypair()[0]

    def broken(domain: str, key: bytes) -> bool:
        raise KeyError("database down")

    async def broken_async(domain: str, key: bytes) -> bool:
        await trio.lowlevel.checkpoint()
        raise OSError("database down")

    async with lab() as t:
        for callback in (broken, broken_async):
            t.auth.configure_curve_callback(credentials_provider=callback)
            with caplog.at_level(logging.ERROR, logger="zmtp.auth"):
                assert await t.status(curve(raw_key(key))) == (b"500", b"Internal error", b"")
        assert "database down" in caplog.text
        assert await t.status(null()) == (b"200", b"OK", b"anonymous")


async def test_curve_user_id_can_be_overridden() -> None:
    class Named(Authenticator):
        def curve_user_id(self, client_public_key: bytes) -> str:
            return "user-" + client_public_key[:2].hex()

    async with zmtp.Context() as ctx, Named(ctx) as auth:
        auth.configure_curve(location=CURVE_ALLOW_ANY)
        dealer = ctx.socket(zmtp.DEALER, linger=0)
        await dealer.connect(ZAP_ENDPOINT)
        t = Lab(ctx, auth, dealer)
        assert (await t.ask(curve(bytes(32)))).user_id == b"user-0000"


# ---------------------------------------------------------------- bad requests

HEAD = [b"1.0", b"1", b"", b"127.0.0.1", b""]


@pytest.mark.parametrize(
    ("frames", "text"),
    [
        ([b"1.0", b"9"], b"Not enough frames"),
        (HEAD, b"Not enough frames"),
        ([b"2.0", *HEAD[1:], b"NULL"], b"Invalid version"),
        ([*HEAD, b"PLAIN", b"admin"], b"Invalid credentials"),
        ([*HEAD, b"PLAIN", b"admin", PASSWORD.encode(), b"x"], b"Invalid credentials"),
        ([*HEAD, b"CURVE"], b"Invalid credentials"),
        ([*HEAD, b"CURVE", bytes(31)], b"Invalid credentials"),
        ([*HEAD, b"NULL", b"x"], b"Invalid credentials"),
    ],
)
async def test_bad_request_gets_400(frames: list[bytes], text: bytes) -> None:
    async with lab() as t:
        t.auth.configure_plain(passwords={"admin": PASSWORD})
        t.auth.configure_curve(location=CURVE_ALLOW_ANY)
        await t.send([b"", *frames])
        assert await t.recv() == [b"", b"1.0", frames[1], b"400", text, b"", b""]


async def test_unanswerable_requests_are_dropped_and_the_handler_lives_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with lab() as t:
        with caplog.at_level(logging.WARNING, logger="zmtp.auth"):
            await t.send([b""])  # nothing after the delimiter
            await t.send([b"", b"1.0"])  # no request id
            await t.send([b"1.0", b"1", b"d", b"127.0.0.1", b"i", b"NULL"])  # no delimiter
            await t.send([b"", b"\xff" * 1000, b"\x00", b"", b"", b"", b"", b""])  # 400
            # Requests are answered in order: the first reply is for the 400, the
            # second for the good request; the three before got nothing.
            _, *frames = await t.recv()
            assert frames[2:4] == [b"400", b"Invalid version"]
            assert await t.status(null()) == (b"200", b"OK", b"anonymous")
        assert "without an envelope delimiter" in caplog.text
        assert caplog.text.count("no request id") == 2


async def test_envelope_of_several_hops_is_echoed() -> None:
    # RFC 27 "Proxy Handlers": N routing ids, then the delimiter, come back as they went.
    async with lab() as t:
        await t.send([b"hop-1", b"hop-2", b"", *encode_request(null())])
        hop1, hop2, delimiter, *frames = await t.recv()
        assert (hop1, hop2, delimiter) == (b"hop-1", b"hop-2", b"")
        assert parse_reply(frames, request_id=b"1").ok


async def test_requests_from_two_servers_are_answered_each() -> None:
    async with lab() as t:
        t.auth.configure_plain(passwords={"admin": PASSWORD})
        other = t.ctx.socket(zmtp.DEALER, linger=0)
        await other.connect(ZAP_ENDPOINT)
        await other.send_multipart([b"", *encode_request(plain(password=b"x"))])
        assert (await t.status(plain()))[0] == b"200"
        with trio.fail_after(10):
            _, *frames = await other.recv_multipart()
        assert parse_reply(frames).status_text == b"Invalid password"


# --------------------------------------------------------------------- logging


async def test_decisions_are_logged_without_passwords(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="zmtp.auth")
    async with lab() as t:
        t.auth.configure_plain(passwords={"admin": PASSWORD})
        await t.status(plain())
        await t.status(plain(password=PASSWORD.encode() + b"x"))
        await t.send([b"", *HEAD, b"PLAIN", b"admin", PASSWORD.encode(), b"extra"])
        await t.recv()
    assert "ALLOWED PLAIN" in caplog.text
    assert "DENIED PLAIN" in caplog.text
    assert "Invalid password" in caplog.text
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()
        assert PASSWORD not in repr(record.args)


# --------------------------------------------------------------------- lifetime


def running_tasks() -> set[trio.lowlevel.Task]:
    """Every task of this trio run."""
    out: set[trio.lowlevel.Task] = set()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        out.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return out


async def test_one_handler_per_context() -> None:
    async with zmtp.Context() as ctx, Authenticator(ctx):
        with pytest.raises(RuntimeError, match="already in use in this Context"):
            async with Authenticator(ctx):
                pass  # pragma: no cover
    # Another Context has its own inproc namespace.
    async with zmtp.Context() as a, zmtp.Context() as b, Authenticator(a), Authenticator(b):
        pass


async def test_start_stop_restart() -> None:
    async with zmtp.Context() as ctx:
        before = running_tasks()
        auth = Authenticator(ctx)
        assert not auth.is_alive()
        await auth.stop()  # not started: nothing to do
        await auth.start()
        assert auth.is_alive()
        assert auth.zap_socket is not None
        with pytest.raises(RuntimeError, match="already started"):
            await auth.start()
        await auth.stop()
        assert not auth.is_alive()
        assert auth.zap_socket is None
        assert running_tasks() <= before
        await auth.stop()
        # The endpoint is free again: this one or another can take it.
        async with Authenticator(ctx) as again:
            dealer = ctx.socket(zmtp.DEALER, linger=0)
            await dealer.connect(ZAP_ENDPOINT)
            assert await Lab(ctx, again, dealer).status(null()) == (b"200", b"OK", b"anonymous")
            await dealer.aclose()
        await auth.start()
        await auth.stop()
        assert running_tasks() <= before


async def test_cancelled_block_exits_promptly_and_leaves_no_task() -> None:
    async with zmtp.Context() as ctx:
        before = running_tasks()
        auth = Authenticator(ctx)
        with trio.CancelScope() as scope:
            async with auth:
                assert auth.is_alive()
                scope.cancel()
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert not auth.is_alive()
        assert running_tasks() <= before
        async with Authenticator(ctx):  # the endpoint was released
            pass


async def test_cancelled_while_a_callback_is_pending() -> None:
    entered = trio.Event()

    async def never(domain: str, key: bytes) -> bool:
        entered.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async with zmtp.Context() as ctx:
        before = running_tasks()
        with trio.CancelScope() as scope:
            async with Authenticator(ctx) as auth:
                auth.configure_curve_callback(credentials_provider=never)
                dealer = ctx.socket(zmtp.DEALER, linger=0)
                await dealer.connect(ZAP_ENDPOINT)
                await dealer.send_multipart([b"", *encode_request(curve(bytes(32)))])
                await entered.wait()
                scope.cancel()
                await trio.sleep_forever()
        await dealer.aclose()
        assert running_tasks() <= before


async def test_exception_in_block_stops_the_handler() -> None:
    async with zmtp.Context() as ctx:
        auth = Authenticator(ctx)
        with pytest.raises(KeyError):
            async with auth:
                raise KeyError("boom")
        assert not auth.is_alive()


async def test_context_closing_first_ends_the_handler() -> None:
    async with zmtp.Context() as ctx:
        auth = Authenticator(ctx)
        await auth.start()
    assert not auth.is_alive()
    await auth.stop()  # harmless afterwards


async def test_start_needs_an_open_context() -> None:
    async with zmtp.Context() as ctx:
        pass
    with pytest.raises(trio.ClosedResourceError):
        await Authenticator(ctx).start()


def test_exports() -> None:
    assert zmtp.auth.CURVE_ALLOW_ANY == "*"
    assert {"Authenticator", "CURVE_ALLOW_ANY", "load_certificates"} <= set(zmtp.auth.__all__)
