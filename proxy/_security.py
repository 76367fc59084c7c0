"""CURVE and PLAIN for ``python -m proxy``: which socket speaks what, from the flags.

The rule is by *role in the connection*, not by frontend or backend:

* a socket that **binds** (``TYPE@ENDPOINT``) is a **server**: ``--curve-secret FILE``
  makes it a CURVE server with that certificate, letting in any client key (libzmq's
  "Stonehouse": no ZAP handler is started, the connection is still encrypted and the
  proxy authenticated) or only the keys of ``--curve-allow DIR`` (an
  :class:`zmtp.auth.Authenticator` with those keys); ``--plain-passwords FILE`` makes
  it a PLAIN server checking the file's ``user=password`` lines (an Authenticator: a
  PLAIN server without a ZAP handler refuses everyone);
* a socket that **connects** (``TYPE>ENDPOINT``) is a **client**: ``--curve-secret``
  with ``--curve-server FILE`` (the server's public certificate) makes it a CURVE
  client; ``--plain-user USER:PASSWORD`` a PLAIN client.

The flags apply to ``--frontend`` and ``--backend``.  ``--capture`` and ``--control``
stay NULL (a local tap or a steering socket, usually on ipc or 127.0.0.1) unless
``--secure-all`` applies the same rule to them; a NULL capture or control on tcp in a
secured proxy is pointed out on its startup line, since its traffic is in clear.

One socket has one mechanism, so a socket that both binds and connects is refused
whenever a flag would make its bound and connected sides differ, and so are CURVE and
PLAIN flags for the same kind of socket (``--curve-secret`` covers both kinds).
Everything is checked, and every file read, before a socket exists: each problem is a
:class:`SecurityError` with a one-line message naming the flag (and file, and line).
Passwords are kept out of every message, log line and ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zmtp.auth import Authenticator, CertificateError, load_certificate, load_certificates

from ._endpoints import SocketSpec

__all__ = [
    "PASSWORD_ENV",
    "PLAIN_MAX",
    "Security",
    "SecurityError",
    "parse_plain_user",
    "read_passwords",
]

#: ``--plain-user USER`` (no ``:PASSWORD``) reads the password from this variable, so
#: that it is not on the command line (where ``ps`` shows it to every local user).
PASSWORD_ENV = "ZMTP_PROXY_PLAIN_PASSWORD"

#: PLAIN (RFC 24) carries user names and passwords of up to 255 octets.
PLAIN_MAX = 255

#: The socket roles the flags always apply to; --secure-all adds capture and control.
MAIN_ROLES = ("frontend", "backend")


class SecurityError(ValueError):
    """Security flags that cannot work together, or a file they name that is bad."""


def _no_pynacl() -> SecurityError:
    return SecurityError("CURVE needs PyNaCl: pip install 'zmtp[curve]'")


def _certificate_error(flag: str, exc: CertificateError) -> SecurityError:
    # A file given by mistake (the passwords file as a certificate) must not have its
    # lines shown: the reader quotes a line it cannot parse, so cut the quote off.
    text, _sep, _quoted = str(exc).partition(": not a ZPL line:")
    return SecurityError(f"{flag}: {text}" + (": not a ZPL line" if _sep else ""))


def _check_plain(what: str, value: str, where: str) -> bytes:
    raw = value.encode("utf-8")
    if not raw:
        raise SecurityError(f"{where}: empty {what}")
    if len(raw) > PLAIN_MAX:
        raise SecurityError(f"{where}: {what} longer than {PLAIN_MAX} octets (PLAIN's limit)")
    return raw


def parse_plain_user(text: str, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``USER:PASSWORD`` (or ``USER``, the password from :data:`PASSWORD_ENV`).

    The password never appears in an error message.

    Raises:
        SecurityError: no user name, no password, or one longer than PLAIN allows.
    """
    environ = os.environ if environ is None else environ
    user, sep, password = text.partition(":")
    where = "--plain-user"
    if not sep:
        env = environ.get(PASSWORD_ENV)
        if env is None:
            raise SecurityError(
                f"{where}: expected USER:PASSWORD, or USER with the password in ${PASSWORD_ENV}"
            )
        password = env
    _check_plain("user name", user, where)
    _check_plain("password", password, where)
    return user, password


def read_passwords(path: str) -> dict[str, str]:
    """Read a ``--plain-passwords`` file: ``user=password`` lines.

    Blank lines and lines whose first non-blank character is ``#`` are skipped; spaces
    around the user name and the password are ignored; the password is everything
    after the first ``=`` (so it may hold ``=`` and ``#``).

    Raises:
        SecurityError: the file cannot be read, a line is not ``user=password`` (the
            message names the file and the line, never the line's text), a user
            appears twice, or there is no user at all.
    """
    where = f"--plain-passwords {path}"
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise SecurityError(f"{where}: not UTF-8 text") from None
    except OSError as exc:
        raise SecurityError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    users: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        body = line.strip()
        if not body or body.startswith("#"):
            continue
        here = f"{where}:{number}"
        user, sep, password = body.partition("=")
        if not sep:
            raise SecurityError(f"{here}: expected user=password")
        user, password = user.strip(), password.strip()
        _check_plain("user name", user, here)
        _check_plain("password", password, here)
        if user in users:
            raise SecurityError(
                f"{here}: user {user!r} is given twice (first on line {first_line[user]})"
            )
        users[user] = password
        first_line[user] = number
    if not users:
        raise SecurityError(f"{where}: no user=password line; every client would be refused")
    return users


def _load_secret(path: str) -> tuple[bytes, bytes]:
    where = f"--curve-secret {path}"
    try:
        public, secret = load_certificate(path)
    except ImportError:
        raise _no_pynacl() from None
    except CertificateError as exc:
        raise _certificate_error("--curve-secret", exc) from None
    except OSError as exc:
        raise SecurityError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    if secret is None:
        raise SecurityError(
            f"{where}: holds no secret key (a public certificate? give the .key_secret file)"
        )
    return public, secret


def _load_server(path: str) -> bytes:
    try:
        public, _secret = load_certificate(path)
    except ImportError:
        raise _no_pynacl() from None
    except CertificateError as exc:
        raise _certificate_error("--curve-server", exc) from None
    except OSError as exc:
        raise SecurityError(
            f"--curve-server {path}: cannot read it: {exc.strerror or exc}"
        ) from None
    return public


def _load_allowed(path: str) -> tuple[bytes, ...]:
    where = f"--curve-allow {path}"
    try:
        keys = load_certificates(path)
    except NotADirectoryError:
        raise SecurityError(
            f"{where}: not a directory (give a directory of public certificates, or 'any')"
        ) from None
    except CertificateError as exc:
        raise _certificate_error("--curve-allow", exc) from None
    except OSError as exc:
        raise SecurityError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    if not keys:
        raise SecurityError(
            f"{where}: no public certificates (*.key) there; every client would be refused"
        )
    return tuple(keys)


@dataclass(frozen=True)
class Security:
    """What the security flags decided (all files read and checked).

    Build it with :meth:`from_flags`; an empty ``Security()`` is a NULL proxy.
    """

    #: --curve-secret: the file, and our key pair (Z85).
    curve_file: str | None = None
    curve_public: bytes | None = None
    curve_secret: bytes | None = field(default=None, repr=False)
    #: --curve-allow: the directory and its keys; None lets any client key in.
    allow_dir: str | None = None
    allow_keys: tuple[bytes, ...] = ()
    #: --curve-server: the file, and the server's public key.
    server_file: str | None = None
    server_key: bytes | None = None
    #: --plain-passwords: the file and its users.
    passwords_file: str | None = None
    passwords: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: --plain-user.
    plain_user: str | None = None
    plain_password: str | None = field(default=None, repr=False)
    #: --secure-all: capture and control too.
    secure_all: bool = False

    # ------------------------------------------------------------------ building

    @classmethod
    def from_flags(
        cls,
        *,
        curve_secret: str | None = None,
        curve_allow: str | None = None,
        curve_server: str | None = None,
        plain_passwords: str | None = None,
        plain_user: tuple[str, str] | None = None,
        secure_all: bool = False,
        sockets: Mapping[str, SocketSpec | None] | None = None,
    ) -> Security:
        """Check the flags against each other and the sockets; read the files.

        Args:
            sockets: ``{role: spec}`` of the sockets the proxy will open (None for an
                absent capture or control).

        Raises:
            SecurityError: the first problem, as one line.
        """
        if curve_server is not None and curve_secret is None:
            raise SecurityError(
                "--curve-server needs --curve-secret: a CURVE client has a certificate "
                "of its own too"
            )
        if curve_allow is not None and curve_secret is None:
            raise SecurityError(
                "--curve-allow needs --curve-secret: it lists the clients a CURVE server lets in"
            )
        if curve_secret is not None and plain_passwords is not None:
            raise SecurityError(
                "--curve-secret and --plain-passwords both say what bound sockets speak "
                "(CURVE or PLAIN server): one socket has one mechanism"
            )
        if curve_secret is not None and plain_user is not None:
            raise SecurityError(
                "--curve-secret and --plain-user both say what connected sockets speak "
                "(CURVE or PLAIN client): one socket has one mechanism"
            )
        any_flag = curve_secret is not None or plain_passwords is not None or plain_user
        if secure_all and not any_flag:
            raise SecurityError(
                "--secure-all applies the security flags to --capture and --control, "
                "and none is given"
            )
        draft = cls(
            curve_file=curve_secret,
            allow_dir=None if curve_allow in (None, "any") else curve_allow,
            server_file=curve_server,
            passwords_file=plain_passwords,
            plain_user=plain_user[0] if plain_user else None,
            plain_password=plain_user[1] if plain_user else None,
            secure_all=secure_all,
        )
        if sockets is not None:
            draft._check_sockets(sockets)
        public = secret = server_key = None
        allow_keys: tuple[bytes, ...] = ()
        passwords: dict[str, str] = {}
        if curve_secret is not None:
            public, secret = _load_secret(curve_secret)
        if curve_server is not None:
            server_key = _load_server(curve_server)
        if draft.allow_dir is not None:
            allow_keys = _load_allowed(draft.allow_dir)
        if plain_passwords is not None:
            passwords = read_passwords(plain_passwords)
        return cls(
            curve_file=curve_secret,
            curve_public=public,
            curve_secret=secret,
            allow_dir=draft.allow_dir,
            allow_keys=allow_keys,
            server_file=curve_server,
            server_key=server_key,
            passwords_file=plain_passwords,
            passwords=passwords,
            plain_user=draft.plain_user,
            plain_password=draft.plain_password,
            secure_all=secure_all,
        )

    def _check_sockets(self, sockets: Mapping[str, SocketSpec | None]) -> None:
        binds = connects = False
        for role, spec in sockets.items():
            if spec is None or not self.applies_to(role):
                continue
            kinds = {bind for bind, _endpoint in spec.endpoints}
            if kinds == {True, False}:
                raise SecurityError(
                    f"--{role} {spec} both binds and connects, but it would be "
                    f"{self.mechanism(True)} where it binds and {self.mechanism(False)} "
                    "where it connects: one socket has one mechanism (give it only @ or "
                    "only > endpoints)"
                )
            if False in kinds and self.curve_file is not None and self.server_file is None:
                raise SecurityError(
                    f"--{role} {spec} connects, and a CURVE client needs the server's "
                    "public certificate: give --curve-server FILE"
                )
            binds |= True in kinds
            connects |= False in kinds
        scope = "--frontend, --backend" + (", --capture, --control" if self.secure_all else "")
        if not connects:
            for flag, given in (
                ("--curve-server", self.server_file),
                ("--plain-user", self.plain_user),
            ):
                if given is not None:
                    raise SecurityError(
                        f"{flag} is for sockets that connect (TYPE>ENDPOINT), and none of "
                        f"{scope} does"
                    )
        if not binds:
            for flag, given in (
                ("--curve-allow", self.allow_dir),
                ("--plain-passwords", self.passwords_file),
            ):
                if given is not None:
                    raise SecurityError(
                        f"{flag} is for sockets that bind (TYPE@ENDPOINT), and none of {scope} does"
                    )

    # ------------------------------------------------------------------ using

    @property
    def enabled(self) -> bool:
        """True if any security flag was given."""
        return (
            self.curve_file is not None
            or self.passwords_file is not None
            or self.plain_user is not None
        )

    @property
    def needs_authenticator(self) -> bool:
        """True if bound sockets need a ZAP handler (a CURVE allow list, or PLAIN)."""
        return self.allow_dir is not None or self.passwords_file is not None

    def applies_to(self, role: str) -> bool:
        """Whether the flags apply to the socket of this role."""
        return self.enabled and (role in MAIN_ROLES or self.secure_all)

    def mechanism(self, bind: bool) -> str:
        """What a socket the flags apply to speaks: ``"CURVE server"``, ``"NULL"``..."""
        if self.curve_file is not None:
            return "CURVE server" if bind else "CURVE client"
        if bind and self.passwords_file is not None:
            return "PLAIN server"
        if not bind and self.plain_user is not None:
            return "PLAIN client"
        return "NULL"

    def socket_options(self, role: str, spec: SocketSpec) -> dict[str, Any]:
        """The zmtp socket options for the socket of ``role`` (none for NULL)."""
        if not self.applies_to(role) or not spec.endpoints:
            return {}
        bind = spec.endpoints[0][0]
        if self.curve_secret is not None:
            if bind:
                return {"curve_server": True, "curve_secretkey": self.curve_secret}
            return {"curve_secretkey": self.curve_secret, "curve_serverkey": self.server_key}
        if bind and self.passwords_file is not None:
            return {"plain_server": True}
        if not bind and self.plain_user is not None:
            return {"plain_username": self.plain_user, "plain_password": self.plain_password}
        return {}

    def describe(self, role: str, bind: bool, endpoint: str) -> str:
        """What the startup line says after the endpoint, e.g. ``" (CURVE server,
        clients: any)"``; nothing at all in a proxy without security flags."""
        if not self.enabled:
            return ""
        if endpoint.startswith("inproc://"):
            return " (inproc: no security mechanism, as in libzmq)"
        if not self.applies_to(role):
            if not endpoint.startswith("tcp://"):
                return " (NULL)"
            if bind:
                return " (NULL: in clear, and anyone may connect; --secure-all secures it)"
            return " (NULL: in clear; --secure-all secures it)"
        kind = self.mechanism(bind)
        if kind == "CURVE server":
            if self.allow_dir is None:
                return " (CURVE server, clients: any)"
            n = len(self.allow_keys)
            return f" (CURVE server, clients: {n} key{'s' * (n != 1)} from {self.allow_dir})"
        if kind == "CURVE client":
            return f" (CURVE client, server key from {self.server_file})"
        if kind == "PLAIN server":
            n = len(self.passwords)
            return f" (PLAIN server, {n} user{'s' * (n != 1)} from {self.passwords_file})"
        if kind == "PLAIN client":
            return f" (PLAIN client, user {self.plain_user})"
        return " (NULL)"

    def summary(self) -> list[str]:
        """Startup lines about the proxy's own identity (public, safe to print)."""
        if self.curve_public is None:
            return []
        return [f"CURVE public key of this proxy: {self.curve_public.decode()} ({self.curve_file})"]

    def configure(self, auth: Authenticator) -> None:
        """Give the ZAP handler the policy of the bound sockets."""
        if self.allow_dir is not None:
            auth.configure_curve(domain="*", location=self.allow_keys)
        if self.passwords_file is not None:
            auth.configure_plain(domain="*", passwords=dict(self.passwords))
