"""``python -m proxy`` with CURVE and PLAIN: the flags, every refusal, the files, and
passwords kept out of every output.

Refusals are checked word for word: each is one line on stderr, exit status 2, before
any socket exists.  The subprocess tests talk to the proxy with zmtp sockets (the
pyzmq ones are in interop/test_proxy_security_interop.py) and synchronise on its
output lines and on messages, never on sleeps.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

import proxy._cli
import zmtp
from proxy import SocketSpec, parse_socket_spec
from proxy._cli import _config, _make_parser, main
from proxy._demo import _curve_setup
from proxy._security import PASSWORD_ENV, Security, parse_plain_user, read_passwords
from proxy._testing import ProxyProcess, parse_final_statistics
from zmtp.auth import create_certificates, load_certificate

pytest.importorskip("nacl")

#: An upper bound for a hang; subprocess start-up is slow on a loaded machine.
SUBPROCESS_TIMEOUT = 60

#: Passwords used below: none of them may appear in any output.
ALICE_PW = "alice-Pa55word"
BOB_PW = "b0b=with#signs"
CLIENT_PW = "client-S3cret"
WRONG_PW = "wr0ng-Guess"
PASSWORDS = (ALICE_PW, BOB_PW, CLIENT_PW, WRONG_PW)

LOCAL = "tcp://127.0.0.1:0"
UPSTREAM = "tcp://127.0.0.1:9"  # connected to, never reached in these tests


@dataclass
class Files:
    """Certificates and a passwords file in a temporary directory."""

    root: Path
    proxy_secret: Path  # proxy.key_secret
    proxy_public: Path  # proxy.key
    server_public: Path  # server.key (an upstream server's public certificate)
    allowed: Path  # a directory with two client certificates
    client_secret: Path  # allowed/client.key_secret
    stranger_secret: Path  # a client certificate outside allowed/
    passwords: Path


@pytest.fixture
def files(tmp_path: Path) -> Files:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    proxy_public, proxy_secret = create_certificates(tmp_path, "proxy")
    server_public, _ = create_certificates(tmp_path, "server")
    _, client_secret = create_certificates(allowed, "client")
    create_certificates(allowed, "other")
    (tmp_path / "strangers").mkdir()
    _, stranger_secret = create_certificates(tmp_path / "strangers", "stranger")
    passwords = tmp_path / "passwords"
    passwords.write_text(
        f"# users of the proxy\n\nalice={ALICE_PW}\n   bob = {BOB_PW}  \n# the end\n"
    )
    return Files(
        tmp_path,
        proxy_secret,
        proxy_public,
        server_public,
        allowed,
        client_secret,
        stranger_secret,
        passwords,
    )


@pytest.fixture(autouse=True)
def _never_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process, main() must stop at the arguments: a test that expected a
    refusal and got none fails at once instead of running a proxy for ever."""

    async def refuse_to_run(*args: object) -> int:
        raise AssertionError("the arguments were accepted: the proxy would have run")

    monkeypatch.setattr(proxy._cli, "_amain", refuse_to_run)


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run main(argv); check exit 2, nothing on stdout, one line on stderr; return it."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    for password in PASSWORDS:
        assert password not in err
    return err.rstrip("\n")


def _error(text: str) -> str:
    return f"zmtp-proxy: error: {text} (see --help)"


QUEUE = ["--frontend", f"ROUTER@{LOCAL}", "--backend", f"DEALER@{LOCAL}"]
OUTWARD = ["--frontend", f"ROUTER@{LOCAL}", "--backend", f"DEALER>{UPSTREAM}"]


# ---------------------------------------------------------------------- refusals


def test_contradictory_flags_are_refused(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    secret, server, pw = str(files.proxy_secret), str(files.server_public), str(files.passwords)
    cases = [
        (
            [*OUTWARD, "--curve-server", server],
            "--curve-server needs --curve-secret: a CURVE client has a certificate of its "
            "own too",
        ),
        (
            [*QUEUE, "--curve-allow", str(files.allowed)],
            "--curve-allow needs --curve-secret: it lists the clients a CURVE server lets in",
        ),
        (
            [*QUEUE, "--curve-allow", "any"],
            "--curve-allow needs --curve-secret: it lists the clients a CURVE server lets in",
        ),
        (
            [*QUEUE, "--curve-secret", secret, "--plain-passwords", pw],
            "--curve-secret and --plain-passwords both say what bound sockets speak (CURVE "
            "or PLAIN server): one socket has one mechanism",
        ),
        (
            [*OUTWARD, "--curve-secret", secret, "--plain-user", f"alice:{ALICE_PW}"],
            "--curve-secret and --plain-user both say what connected sockets speak (CURVE "
            "or PLAIN client): one socket has one mechanism",
        ),
        (
            [*OUTWARD, "--curve-secret", secret],
            f"--backend DEALER>{UPSTREAM} connects, and a CURVE client needs the server's "
            "public certificate: give --curve-server FILE",
        ),
        (
            [*QUEUE, "--curve-secret", secret, "--curve-server", server],
            "--curve-server is for sockets that connect (TYPE>ENDPOINT), and none of "
            "--frontend, --backend does",
        ),
        (
            [*QUEUE, "--plain-user", f"alice:{ALICE_PW}"],
            "--plain-user is for sockets that connect (TYPE>ENDPOINT), and none of "
            "--frontend, --backend does",
        ),
        (
            [
                "--frontend", f"XSUB>{UPSTREAM}",
                "--backend", f"XPUB>{UPSTREAM}",
                "--plain-passwords", pw,
            ],
            "--plain-passwords is for sockets that bind (TYPE@ENDPOINT), and none of "
            "--frontend, --backend does",
        ),
        (
            [
                "--frontend", f"XSUB>{UPSTREAM}",
                "--backend", f"XPUB>{UPSTREAM}",
                "--curve-secret", secret,
                "--curve-server", server,
                "--curve-allow", str(files.allowed),
                "--control", f"REP@{LOCAL}",
            ],
            "--curve-allow is for sockets that bind (TYPE@ENDPOINT), and none of "
            "--frontend, --backend does",
        ),
        (
            [*QUEUE, "--secure-all", "--control", f"REP@{LOCAL}"],
            "--secure-all applies the security flags to --capture and --control, and none "
            "is given",
        ),
        (["--demo", "--curve-secret", secret], "--demo makes its own certificates (--demo "
         "--curve); it takes no --curve-secret"),
        (["--curve"], "--curve goes with --demo; a proxy of your own takes --curve-secret FILE"),
    ]  # fmt: skip
    for argv, message in cases:
        assert _refused(argv, capsys) == _error(message), argv


@pytest.mark.parametrize(
    ("frontend", "flags", "what"),
    [
        ("PULL@{local},>{up}", ["--curve-secret", "{secret}", "--curve-server", "{server}"],
         "CURVE server where it binds and CURVE client"),
        ("PULL@{local},>{up}", ["--plain-passwords", "{pw}"],
         "PLAIN server where it binds and NULL"),
        ("PULL>{up},@{local}", ["--plain-user", "alice:" + ALICE_PW],
         "NULL where it binds and PLAIN client"),
    ],
    ids=["curve", "plain-server", "plain-client"],
)  # fmt: skip
def test_a_socket_that_binds_and_connects_is_refused_with_security(
    files: Files, capsys: pytest.CaptureFixture[str], frontend: str, flags: list[str], what: str
) -> None:
    names = {
        "local": LOCAL,
        "up": UPSTREAM,
        "secret": files.proxy_secret,
        "server": files.server_public,
        "pw": files.passwords,
    }
    spec = frontend.format(**names)
    argv = ["--frontend", spec, "--backend", f"PUSH@{LOCAL}", *(f.format(**names) for f in flags)]
    assert _refused(argv, capsys) == _error(
        f"--frontend {spec} both binds and connects, but it would be {what} where it "
        "connects: one socket has one mechanism (give it only @ or only > endpoints)"
    )


def test_capture_and_control_mixing_binds_and_connects_are_refused_only_with_secure_all(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    mixed = f"PUB@{LOCAL},>{UPSTREAM}"
    argv = [*QUEUE, "--curve-secret", str(files.proxy_secret), "--capture", mixed]
    parser = _make_parser()
    # Without --secure-all the capture socket stays NULL: it may bind and connect.
    cfg = _config(parser, parser.parse_args(argv), _NotATty())
    assert cfg.security.socket_options("capture", cfg.capture) == {}  # type: ignore[arg-type]
    message = _refused([*argv, "--secure-all", "--curve-server", str(files.server_public)], capsys)
    assert message == _error(
        f"--capture PUB@{LOCAL},>{UPSTREAM} both binds and connects, but it would be CURVE "
        "server where it binds and CURVE client where it connects: one socket has one "
        "mechanism (give it only @ or only > endpoints)"
    )


def test_bad_key_files_are_named(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    missing = files.root / "missing.key_secret"
    garbled = files.root / "garbled.key"
    garbled.write_text('curve\n    public-key = "short"\n')
    not_zpl = files.root / "not-zpl.key_secret"
    not_zpl.write_text(f"curve\n'{ALICE_PW}'\n")  # a quoted line is not ZPL: not shown
    secret = str(files.proxy_secret)
    empty = files.root / "empty"
    empty.mkdir()
    cases = [
        (
            [*QUEUE, "--curve-secret", str(missing)],
            f"--curve-secret {missing}: cannot read it: No such file or directory",
        ),
        (
            [*QUEUE, "--curve-secret", str(files.proxy_public)],
            f"--curve-secret {files.proxy_public}: holds no secret key (a public "
            "certificate? give the .key_secret file)",
        ),
        (
            [*QUEUE, "--curve-secret", str(garbled)],
            f"--curve-secret: {garbled}: public-key is not 40 Z85 characters",
        ),
        ([*QUEUE, "--curve-secret", str(not_zpl)], f"--curve-secret: {not_zpl}:2: not a ZPL line"),
        (
            [*OUTWARD, "--curve-secret", secret, "--curve-server", str(missing)],
            f"--curve-server {missing}: cannot read it: No such file or directory",
        ),
        (
            [*OUTWARD, "--curve-secret", secret, "--curve-server", str(garbled)],
            f"--curve-server: {garbled}: public-key is not 40 Z85 characters",
        ),
        (
            [*QUEUE, "--curve-secret", secret, "--curve-allow", str(files.passwords)],
            f"--curve-allow {files.passwords}: not a directory (give a directory of public "
            "certificates, or 'any')",
        ),
        (
            [*QUEUE, "--curve-secret", secret, "--curve-allow", str(empty)],
            f"--curve-allow {empty}: no public certificates (*.key) there; every client "
            "would be refused",
        ),
        (
            [*QUEUE, "--curve-secret", secret, "--curve-allow", str(files.root)],
            f"--curve-allow: {garbled}: public-key is not 40 Z85 characters",
        ),
    ]
    for argv, message in cases:
        assert _refused(argv, capsys) == _error(message), argv


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"alice={ALICE_PW}\nbob {ALICE_PW}\n", "2: expected user=password"),
        (f"# users\n\nalice={ALICE_PW}\n =nobody\n", "4: empty user name"),
        ("alice=\n", "1: empty password"),
        (f"alice={ALICE_PW}\nalice={BOB_PW}\n", "2: user 'alice' is given twice (first on line 1)"),
        (f"alice={'x' * 256}\n", "1: password longer than 255 octets (PLAIN's limit)"),
        (f"{'a' * 256}={ALICE_PW}\n", "1: user name longer than 255 octets (PLAIN's limit)"),
        ("# nobody\n\n", ": no user=password line; every client would be refused"),
        (b"alice=\xff\xfe\n", ": not UTF-8 text"),
    ],
    ids=["no-equals", "no-user", "no-password", "twice", "long-password", "long-user", "empty",
         "not-utf8"],
)  # fmt: skip
def test_bad_password_files_name_the_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | bytes, problem: str
) -> None:
    path = tmp_path / "pw"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    line = _refused([*QUEUE, "--plain-passwords", str(path)], capsys)
    sep = "" if problem.startswith(":") else ":"
    assert line == _error(f"--plain-passwords {path}{sep}{problem}")


def test_missing_password_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nothing"
    assert _refused([*QUEUE, "--plain-passwords", str(path)], capsys) == _error(
        f"--plain-passwords {path}: cannot read it: No such file or directory"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("alice", f"expected USER:PASSWORD, or USER with the password in ${PASSWORD_ENV}"),
        (f":{ALICE_PW}", "empty user name"),
        ("alice:", "empty password"),
        (f"alice:{'x' * 256}", "password longer than 255 octets (PLAIN's limit)"),
    ],
    ids=["no-password", "no-user", "empty-password", "long"],
)
def test_bad_plain_user(
    value: str, problem: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    line = _refused([*OUTWARD, "--plain-user", value], capsys)
    assert line == _error(f"argument --plain-user: {problem}")


@pytest.mark.parametrize(
    "argv",
    [
        ["--plain-usr", f"alice:{ALICE_PW}"],
        [f"--plain-usr=alice:{ALICE_PW}"],
        ["--plain-password", ALICE_PW],
        ["--passwd", ALICE_PW],
    ],
)
def test_a_misspelt_password_flag_does_not_echo_its_value(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = _refused([*QUEUE, *argv], capsys)
    flag = argv[0].partition("=")[0]
    assert line == _error(f"unrecognized arguments: {flag}{'=' if '=' in argv[0] else ' '}***")


def test_other_unrecognized_arguments_are_still_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert _refused([*QUEUE, "--bogus", "x"], capsys) == _error("unrecognized arguments: --bogus x")


# ---------------------------------------------------------------------- what is read


class _NotATty:
    def isatty(self) -> bool:
        return False


def _cfg(argv: list[str]) -> Security:
    parser = _make_parser()
    return _config(parser, parser.parse_args(argv), _NotATty()).security  # type: ignore[arg-type]


def test_curve_files_are_read(files: Files) -> None:
    sec = _cfg(
        [
            "--frontend", f"ROUTER@{LOCAL}",
            "--backend", f"DEALER>{UPSTREAM}",
            "--curve-secret", str(files.proxy_secret),
            "--curve-server", str(files.server_public),
            "--curve-allow", str(files.allowed),
        ]
    )  # fmt: skip
    public, secret = load_certificate(files.proxy_secret)
    server_key, _ = load_certificate(files.server_public)
    allowed = sorted(load_certificate(p)[0] for p in files.allowed.glob("*.key"))
    assert (sec.curve_public, sec.curve_secret, sec.server_key) == (public, secret, server_key)
    assert sorted(sec.allow_keys) == allowed
    assert sec.needs_authenticator
    front = _spec(f"ROUTER@{LOCAL}")
    back = _spec(f"DEALER>{UPSTREAM}")
    assert sec.socket_options("frontend", front) == {
        "curve_server": True,
        "curve_secretkey": secret,
    }
    assert sec.socket_options("backend", back) == {
        "curve_secretkey": secret,
        "curve_serverkey": server_key,
    }
    # Capture and control stay NULL without --secure-all.
    assert sec.socket_options("control", _spec(f"REP@{LOCAL}")) == {}
    assert sec.describe("frontend", True, LOCAL) == (
        f" (CURVE server, clients: 2 keys from {files.allowed})"
    )
    assert sec.describe("backend", False, UPSTREAM) == (
        f" (CURVE client, server key from {files.server_public})"
    )
    assert sec.describe("control", True, LOCAL) == (
        " (NULL: in clear, and anyone may connect; --secure-all secures it)"
    )
    assert sec.describe("capture", False, UPSTREAM) == " (NULL: in clear; --secure-all secures it)"
    assert sec.describe("control", True, "ipc:///tmp/x") == " (NULL)"
    assert sec.describe("frontend", True, "inproc://x") == (
        " (inproc: no security mechanism, as in libzmq)"
    )
    assert secret is not None and secret.decode() not in repr(sec)


def test_curve_allow_any_needs_no_zap_handler(files: Files) -> None:
    for extra in ([], ["--curve-allow", "any"]):
        sec = _cfg([*QUEUE, "--curve-secret", str(files.proxy_secret), *extra])
        assert not sec.needs_authenticator
        assert sec.describe("backend", True, LOCAL) == " (CURVE server, clients: any)"


def test_secure_all_secures_capture_and_control(files: Files) -> None:
    sec = _cfg(
        [*QUEUE, "--plain-passwords", str(files.passwords), "--secure-all",
         "--control", f"REP@{LOCAL}", "--capture", f"PUB@{LOCAL}"]
    )  # fmt: skip
    for role in ("frontend", "backend", "capture", "control"):
        assert sec.socket_options(role, _spec(f"PUB@{LOCAL}")) == {"plain_server": True}
        assert sec.describe(role, True, LOCAL) == f" (PLAIN server, 2 users from {files.passwords})"


def test_password_file_is_read(files: Files) -> None:
    # '#' and '=' belong to the password after the first '='; spaces around are dropped.
    assert read_passwords(str(files.passwords)) == {"alice": ALICE_PW, "bob": BOB_PW}
    sec = _cfg([*QUEUE, "--plain-passwords", str(files.passwords)])
    assert sec.needs_authenticator
    assert ALICE_PW not in repr(sec) and BOB_PW not in repr(sec)


def test_plain_user_from_the_command_line_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert parse_plain_user(f"alice:{CLIENT_PW}:x") == ("alice", f"{CLIENT_PW}:x")
    assert parse_plain_user("alice", {PASSWORD_ENV: CLIENT_PW}) == ("alice", CLIENT_PW)
    monkeypatch.setenv(PASSWORD_ENV, CLIENT_PW)
    sec = _cfg([*OUTWARD, "--plain-user", "alice"])
    assert (sec.plain_user, sec.plain_password) == ("alice", CLIENT_PW)
    assert sec.socket_options("backend", _spec(f"DEALER>{UPSTREAM}")) == {
        "plain_username": "alice",
        "plain_password": CLIENT_PW,
    }
    assert sec.socket_options("frontend", _spec(f"ROUTER@{LOCAL}")) == {}
    assert sec.describe("backend", False, UPSTREAM) == " (PLAIN client, user alice)"
    assert sec.describe("frontend", True, LOCAL) == " (NULL)"
    assert CLIENT_PW not in repr(sec)


def test_without_security_flags_nothing_changes(files: Files) -> None:
    sec = _cfg(QUEUE)
    assert not sec.enabled
    assert sec.describe("frontend", True, LOCAL) == ""
    assert sec.socket_options("frontend", _spec(f"ROUTER@{LOCAL}")) == {}


def test_help_says_where_each_flag_applies(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in (
        "security: For --frontend and --backend; --capture and --control stay NULL unless "
        "--secure-all.",
        "Sockets that bind (@) are servers, sockets that connect (>) are clients",
        "--curve-secret FILE",
        "--curve-allow DIR|any",
        "for bound sockets",
        "--curve-server FILE",
        "for connected sockets",
        "--plain-passwords FILE",
        "--plain-user USER:PASSWORD",
        f"${PASSWORD_ENV}",
        "--secure-all",
        "--curve",
    ):
        assert phrase in text, phrase


def _spec(text: str) -> SocketSpec:
    return parse_socket_spec(text)


# ---------------------------------------------------------------------- subprocess


async def test_plain_proxy_lets_right_credentials_in_and_never_prints_a_password(
    files: Files,
) -> None:
    """PLAIN on both bound sockets, at DEBUG: alice and bob get through, a wrong
    password is refused, and no password appears on stdout or stderr."""
    with trio.fail_after(SUBPROCESS_TIMEOUT):
        async with ProxyProcess.start(
            *QUEUE,
            "--plain-passwords", str(files.passwords),
            "--log-level", "DEBUG",
        ) as proc:  # fmt: skip
            eps = await proc.endpoints()
            assert proc.lines[0] == (
                f"frontend ROUTER bound to {eps['frontend']} (PLAIN server, 2 users from "
                f"{files.passwords})"
            )
            async with zmtp.Context() as ctx:
                worker = ctx.socket(zmtp.REP, linger=0, plain_username="bob", plain_password=BOB_PW)
                client = ctx.socket(
                    zmtp.REQ, linger=0, plain_username="alice", plain_password=ALICE_PW
                )
                intruder = ctx.socket(
                    zmtp.REQ, linger=0, plain_username="alice", plain_password=WRONG_PW
                )
                with intruder.monitor() as events:
                    await intruder.connect(eps["frontend"])
                    async for event in events:
                        if event.type is zmtp.EventType.HANDSHAKE_FAILED:
                            break
                        assert event.type is not zmtp.EventType.HANDSHAKE_SUCCEEDED
                await intruder.send_multipart([b"let me in"])
                await worker.connect(eps["backend"])
                await client.connect(eps["frontend"])
                await client.send_multipart([b"hello"])
                assert await worker.recv_multipart() == [b"hello"]
                await worker.send_multipart([b"world"])
                assert await client.recv_multipart() == [b"world"]
            proc.send_signal(signal.SIGINT)
            status, rest, err = await proc.finish()
    assert status == 0, err
    assert parse_final_statistics(rest[-1])["frontend->backend"][0] == 1  # not the intruder's
    assert "Invalid password" in err  # the DEBUG log of the ZAP decision is there ...
    output = "\n".join([*proc.lines, err])
    for password in PASSWORDS:
        assert password not in output  # ... but no password


async def test_curve_proxy_with_an_allow_list_and_a_plain_client_upstream(files: Files) -> None:
    """Our CURVE clients through a --curve-allow proxy: an allowed key gets a reply, a
    stranger's handshake fails; the startup lines say each socket's mechanism."""
    _, client_secret = load_certificate(files.client_secret)
    _, stranger_secret = load_certificate(files.stranger_secret)
    proxy_public, _ = load_certificate(files.proxy_secret)
    with trio.fail_after(SUBPROCESS_TIMEOUT):
        async with ProxyProcess.start(
            *QUEUE,
            "--curve-secret", str(files.proxy_secret),
            "--curve-allow", str(files.allowed),
            "--control", f"REP@{LOCAL}",
        ) as proc:  # fmt: skip
            eps = await proc.endpoints()
            assert proc.lines[:4] == [
                f"CURVE public key of this proxy: {proxy_public.decode()} ({files.proxy_secret})",
                f"frontend ROUTER bound to {eps['frontend']} (CURVE server, clients: 2 keys "
                f"from {files.allowed})",
                f"backend DEALER bound to {eps['backend']} (CURVE server, clients: 2 keys "
                f"from {files.allowed})",
                f"control REP bound to {eps['control']} (NULL: in clear, and anyone may "
                "connect; --secure-all secures it)",
            ]
            async with zmtp.Context() as ctx:
                keys = {"curve_secretkey": client_secret, "curve_serverkey": proxy_public}
                worker = ctx.socket(zmtp.DEALER, linger=0, **keys)
                client = ctx.socket(zmtp.REQ, linger=0, **keys)
                stranger = ctx.socket(
                    zmtp.REQ,
                    linger=0,
                    curve_secretkey=stranger_secret,
                    curve_serverkey=proxy_public,
                )
                with stranger.monitor() as events:
                    await stranger.connect(eps["frontend"])
                    async for event in events:
                        if event.type is zmtp.EventType.HANDSHAKE_FAILED:
                            assert "400" in event.reason
                            break
                        assert event.type is not zmtp.EventType.HANDSHAKE_SUCCEEDED
                await worker.connect(eps["backend"])
                await client.connect(eps["frontend"])
                await client.send_multipart([b"ping"])
                *envelope, body = await worker.recv_multipart()
                assert body == b"ping"
                await worker.send_multipart([*envelope, b"pong"])
                assert await client.recv_multipart() == [b"pong"]
                steer = ctx.socket(zmtp.REQ, linger=0)  # the control socket stays NULL
                await steer.connect(eps["control"])
                await steer.send_multipart([b"TERMINATE"])
                assert await steer.recv_multipart() == [b""]
            status, rest, err = await proc.finish()
    assert status == 0, err
    assert parse_final_statistics(rest[-1])["frontend->backend"][0] == 1


async def test_demo_curve_runs_and_exits_0() -> None:
    with trio.fail_after(SUBPROCESS_TIMEOUT):
        async with ProxyProcess.start("--demo", "--curve") as proc:
            status, rest, err = await proc.finish()
    assert status == 0, (rest, err)
    assert rest[0].endswith("REQ clients and REP workers over CURVE")
    assert any("(CURVE server, clients: 2 keys from allowed/;" in line for line in rest)
    assert any(line.startswith("a client with a key not in allowed/ is refused") for line in rest)
    assert any("requests over CURVE;" in line for line in rest)
    assert rest[-1].startswith("zmtp-proxy demo: OK")
    # The throwaway certificates are gone.
    directory = rest[1].split("throwaway certificates in ")[1].split(":")[0]
    assert not Path(directory).exists()


async def test_demo_certificates_are_removed_even_on_error() -> None:
    with pytest.raises(RuntimeError):
        async with _curve_setup() as curve:
            where = Path(curve.directory)
            assert (where / "allowed" / "client.key").exists()
            raise RuntimeError
    assert not where.exists()
