"""CURVE certificates (zmtp.auth): writing, reading, permissions, malformed files.

Interchange with pyzmq's ``zmq.auth`` is in ``interop/test_keys_interop.py``.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

import zmtp
from zmtp.auth import CertificateError, create_certificates, load_certificate, load_certificates


def test_create_and_load(tmp_path: Path) -> None:
    public_file, secret_file = create_certificates(tmp_path, "server", {"name": "srv 1"})
    assert (public_file.name, secret_file.name) == ("server.key", "server.key_secret")
    public, secret = load_certificate(secret_file)
    assert secret is not None and zmtp.curve_public(secret) == public
    assert load_certificate(public_file) == (public, None)
    assert "secret" not in public_file.read_text().split("curve")[1]
    assert '    name = "srv 1"' in public_file.read_text()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_secret_mode_is_enforced_on_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "a.key_secret").write_text("old")
    (tmp_path / "a.key_secret").chmod(0o666)
    _, secret_file = create_certificates(tmp_path, "a")
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_load_certificates(tmp_path: Path) -> None:
    keys = [load_certificate(create_certificates(tmp_path, n)[0])[0] for n in ("b", "a")]
    (tmp_path / "notes.txt").write_text("not a certificate")
    assert load_certificates(tmp_path) == [keys[1], keys[0]]


PUBLIC = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
SECRET = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"


@pytest.mark.parametrize(
    "text",
    [
        f"curve\n    public-key = '{PUBLIC}'\n    secret-key = '{SECRET}'\n",
        f'# c\ncurve  # the keys\n    public-key = {PUBLIC}\n\n    secret-key = "{SECRET}"\n',
        f'metadata\n    a = 1\n        deeper = x\ncurve\n    public-key="{PUBLIC}"\n'
        f'    secret-key  =  "{SECRET}"   # comment\n',
    ],
    ids=["single-quotes", "bare-and-comments", "nested-metadata"],
)
def test_zpl_forms(tmp_path: Path, text: str) -> None:
    path = tmp_path / "x.key_secret"
    path.write_text(text)
    assert load_certificate(path) == (PUBLIC.encode(), SECRET.encode())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metadata\n", "no curve/public-key"),
        (f'public-key = "{PUBLIC}"\n', "no curve/public-key"),
        (f'metadata\n    public-key = "{PUBLIC}"\n', "no curve/public-key"),
        ('curve\n    public-key = "short"\n', "not 40 Z85"),
        (f'curve\n    public-key = "{PUBLIC[:-1]}~"\n', "invalid Z85 character"),
        (f'curve\n   public-key = "{PUBLIC}"\n', "indentation"),
        (f'curve\n\tpublic-key = "{PUBLIC}"\n', "indentation"),
        (f'curve\n        public-key = "{PUBLIC}"\n', "indentation"),
        (f'curve\n    public-key = "{PUBLIC}\n', "not a ZPL line"),
        (
            f'curve\n    public-key = "{PUBLIC}"\n    secret-key = "{PUBLIC}"\n',
            "does not belong",
        ),
    ],
    ids=[
        "no-curve",
        "top-level-key",
        "wrong-section",
        "short",
        "alphabet",
        "indent-3",
        "tab",
        "too-deep",
        "unclosed-quote",
        "mismatched-pair",
    ],
)
def test_malformed(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(text)
    with pytest.raises(CertificateError, match=message):
        load_certificate(path)


def test_binary_file_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "bin.key").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CertificateError, match="UTF-8"):
        load_certificate(tmp_path / "bin.key")
    with pytest.raises(FileNotFoundError):
        load_certificate(tmp_path / "missing.key")


@pytest.mark.parametrize(
    "metadata", [{"bad name": "x"}, {"ok": 'has "quotes"'}, {"ok": "two\nlines"}]
)
def test_bad_metadata(tmp_path: Path, metadata: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="certificate metadata"):
        create_certificates(tmp_path, "m", metadata)
