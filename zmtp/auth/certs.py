"""CURVE certificates: key pairs in ZPL text files (ZeroMQ RFC 4), as czmq and pyzmq keep them.

A certificate named ``name`` is two files in one directory:

* ``name.key``, the public certificate, to hand out: a ``metadata`` section and a
  ``curve`` section holding ``public-key = "<40 Z85 characters>"``;
* ``name.key_secret``, the secret certificate, to keep: the same plus
  ``secret-key = "..."``.  We create it with mode 0600.

ZPL in brief: one ``name`` or ``name = value`` per line, nesting by four spaces of
indentation per level, ``#`` comments, values optionally in single or double quotes.
The reader here is a real (small) ZPL reader, not a search for two keywords: a key
outside the ``curve`` section is not a key.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Mapping
from pathlib import Path

from ..protocol import z85
from ..protocol.errors import ZMTPError
from ..protocol.keys import Z85_KEY_SIZE, curve_keypair, curve_public

__all__ = ["CertificateError", "create_certificates", "load_certificate", "load_certificates"]

_NAME = re.compile(r"[A-Za-z0-9$\-_@.&+/]+")
_LINE = re.compile(
    r"""(?P<name>[A-Za-z0-9$\-_@.&+/]+)\s*
        (?:=\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s#"'][^#]*?))?)?
        \s*(?:\#.*)?$""",
    re.VERBOSE,
)


class CertificateError(ZMTPError, ValueError):
    """A certificate file that is not valid ZPL, lacks its public key, or holds keys
    that are not CURVE keys (or do not belong together)."""


def _banner(kind: str) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"#   ZeroMQ CURVE {kind} certificate, written by zmtp on {now}\n"
        + (
            "#   Keep this file to yourself: it holds a secret key.\n"
            if kind == "secret"
            else "#   Share it freely; check it came from its owner before trusting it.\n"
        )
        + "\n"
    )


def _zpl_value(text: str, what: str) -> str:
    if '"' in text or "\n" in text or "\r" in text:
        raise ValueError(f"certificate {what} {text!r} cannot hold quotes or line breaks")
    return f'"{text}"'


def _write(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), mode)  # also when the file existed with another mode
        f.write(text)


def create_certificates(
    directory: str | os.PathLike[str],
    name: str,
    metadata: Mapping[str, str] | None = None,
) -> tuple[Path, Path]:
    """Make a new key pair and write it as ``name.key`` and ``name.key_secret``.

    Args:
        directory: an existing directory.
        name: the certificates' base name.
        metadata: ``name = value`` lines for the ``metadata`` section.

    Returns:
        the paths of the public and the secret certificate.

    Raises:
        ValueError: a metadata name outside ZPL's characters, or a value with quotes or
            line breaks.
        OSError: the files cannot be written.
    """
    lines = ["metadata"]
    for key, value in (metadata or {}).items():
        if not _NAME.fullmatch(key):
            raise ValueError(f"invalid certificate metadata name {key!r}")
        lines.append(f"    {key} = {_zpl_value(value, 'metadata value')}")
    public, secret = curve_keypair()
    public_lines = [*lines, "curve", f'    public-key = "{public.decode()}"']
    secret_lines = [*public_lines, f'    secret-key = "{secret.decode()}"']
    base = Path(directory)
    public_file, secret_file = base / f"{name}.key", base / f"{name}.key_secret"
    _write(public_file, _banner("public") + "\n".join(public_lines) + "\n", 0o644)
    _write(secret_file, _banner("secret") + "\n".join(secret_lines) + "\n", 0o600)
    return public_file, secret_file


def _parse_zpl(text: str, where: str) -> dict[str, str]:
    """The ZPL tree flattened to ``{"section/name": value}`` (value "" for a bare name)."""
    tree: dict[str, str] = {}
    stack: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        body = line.lstrip(" ")
        if not body.strip() or body.startswith("#"):
            continue
        indent = len(line) - len(body)
        if "\t" in line[: indent + 1] or indent % 4 or indent // 4 > len(stack):
            raise CertificateError(f"{where}:{number}: bad ZPL indentation")
        match = _LINE.fullmatch(body.rstrip())
        if match is None:
            raise CertificateError(f"{where}:{number}: not a ZPL line: {body.rstrip()!r}")
        del stack[indent // 4 :]
        stack.append(match["name"])
        value = match["dq"] if match["dq"] is not None else match["sq"]
        if value is None:
            value = (match["bare"] or "").strip()
        tree["/".join(stack)] = value
    return tree


def _key(tree: dict[str, str], name: str, where: str) -> bytes | None:
    value = tree.get(f"curve/{name}")
    if value is None:
        return None
    raw = value.encode("ascii", "replace")
    if len(raw) != Z85_KEY_SIZE:
        raise CertificateError(f"{where}: {name} is not 40 Z85 characters")
    try:
        z85.decode(raw)
    except ValueError as exc:
        raise CertificateError(f"{where}: {name}: {exc}") from None
    return raw


def load_certificate(path: str | os.PathLike[str]) -> tuple[bytes, bytes | None]:
    """Read a certificate file: ``(public_key, secret_key or None)``, both Z85 bytes.

    Raises:
        CertificateError: not ZPL, no ``curve/public-key``, a key that is not 40 Z85
            characters, or a secret key that does not belong to the public key.
        OSError: the file cannot be read (a missing file included).
    """
    where = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CertificateError(f"{where}: not UTF-8 text") from None
    tree = _parse_zpl(text, where)
    public = _key(tree, "public-key", where)
    if public is None:
        raise CertificateError(f"{where}: no curve/public-key")
    secret = _key(tree, "secret-key", where)
    if secret is not None and curve_public(secret) != public:
        raise CertificateError(f"{where}: the secret key does not belong to the public key")
    return public, secret


def load_certificates(directory: str | os.PathLike[str]) -> list[bytes]:
    """The public keys of every ``*.key`` certificate in ``directory``, by file name.

    Raises:
        CertificateError: as :func:`load_certificate`, for any of the files.
        OSError: ``directory`` is not a directory (as pyzmq; ``Path.glob`` alone would
            find nothing there and hide the mistake) or cannot be listed.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise NotADirectoryError(f"not a certificate directory: {os.fspath(directory)}")
    return [load_certificate(path)[0] for path in sorted(folder.glob("*.key"))]
